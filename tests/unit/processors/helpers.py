"""Builders shared by the processor unit tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robostream.processors.columns import TelemetryColumns

HOUR_START = 1_800_000_000_000_000 - 1_800_000_000_000_000 % 3_600_000_000  # an hour boundary, µs


def signal_records(
    count: int, value: Callable[[int], tuple[float, ...]], *, names: tuple[str, ...] = ("a", "b"),
    per_record: int = 10, period_us: int = 10_000, start: int = HOUR_START, session: str = "s1",
    first_seq: int = 0,
) -> list[TelemetryColumns]:
    """``count`` records of ``per_record`` samples; sample k has time start + k*period, values value(k)."""
    records = []
    for r in range(count):
        ks = range(r * per_record, (r + 1) * per_record)
        times = np.array([start + k * period_us for k in ks], dtype=np.int64)
        values = np.array([value(k) for k in ks], dtype=np.float64).T.reshape(len(names), per_record)
        records.append(TelemetryColumns("robot_1", session, first_seq + r, int(times[0]), times,
                                        names, values))
    return records
