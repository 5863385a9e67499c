"""Bucketing: every telemetry point gets its ``bucket_hour`` and ``bucket_minute``.

The fresh records of one session in one processing batch become one :class:`TelemetryBucket`
per minute (points in stream order; a record crossing a minute is split). Columns stay NumPy
arrays (:mod:`robostream.processors.wire` writes them as they are).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robostream.processors.columns import TelemetryColumns
from robostream.processors.records import TelemetryBucket
from robostream.times import HOUR_US, MINUTE_US


def floor_to(timestamp: int, unit_us: int) -> int:
    """``timestamp`` (µs) rounded down to a multiple of ``unit_us`` (UTC hour / minute)."""
    return timestamp - timestamp % unit_us


def _merged(records: Sequence[TelemetryColumns]) -> tuple[list[str], np.ndarray]:
    """One metric matrix for records that may not share their metric names (NaN where absent)."""
    names = records[0].names
    if all(r.names == names for r in records):
        if len(records) == 1:
            return list(names), records[0].values
        return list(names), np.concatenate([r.values for r in records], axis=1)
    order: dict[str, int] = {}
    for record in records:
        for name in record.names:
            order.setdefault(name, len(order))
    total = sum(len(r) for r in records)
    matrix = np.full((len(order), total), np.nan)
    column = 0
    for record in records:
        rows = [order[name] for name in record.names]
        matrix[rows, column:column + len(record)] = record.values
        column += len(record)
    return list(order), matrix


def bucket_records(records: Sequence[TelemetryColumns]) -> list[TelemetryBucket]:
    """Buckets of the records of one session (stream order kept within each bucket)."""
    if not records:
        return []
    first = records[0]
    names, values = _merged(records)
    times = np.concatenate([r.times for r in records]) if len(records) > 1 else first.times
    seqs = np.repeat(np.array([r.seq for r in records], dtype=np.int64), [len(r) for r in records])
    indexes = np.concatenate([np.arange(len(r), dtype=np.int64) for r in records])
    minutes = times - times % MINUTE_US
    joint_names: tuple[str, ...] = ()
    units: dict[str, str] = {}
    for record in records:
        joint_names = record.joint_names or joint_names
        units.update(record.units)
    buckets = []
    order = _in_order(minutes)
    for minute in order:
        sel: slice | np.ndarray = slice(None) if len(order) == 1 else minutes == minute
        block = values[:, sel]
        buckets.append(TelemetryBucket(
            robot_id=first.robot_id, session_id=first.session_id,
            bucket_hour=floor_to(minute, HOUR_US), bucket_minute=minute,
            timestamps=times[sel], seqs=seqs[sel], indexes=indexes[sel],
            values={name: block[i] for i, name in enumerate(names)},
            joint_names=list(joint_names), units=units,
        ))
    return buckets


def _in_order(minutes: np.ndarray) -> list[int]:
    """Distinct minutes in order of first appearance."""
    if minutes[0] == minutes[-1] and (minutes.shape[0] < 3 or bool((minutes == minutes[0]).all())):
        return [int(minutes[0])]
    unique, first = np.unique(minutes, return_index=True)
    return [int(m) for m in unique[np.argsort(first)]]
