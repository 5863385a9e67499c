"""Telemetry streams sampled at their rates and grouped into columnar ``time_series`` records.

Streams at the same rate share records (at the default 100 Hz, pose, joints and IMU travel
together). A sample is sent when it exists, not when a timer fires: a record closes when it
holds ``samples_per_record`` samples, when its first sample is ``max_span_s`` old, or as soon as
its stream's next sample would come after that deadline, so a slow stream (1 Hz metrics, 30 Hz
force/torque) never waits for company. :meth:`Telemetry.next_sample_at` tells the simulator
when to wake next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robostream.simulator.robot import RobotModel, time_series_payload
from robostream.simulator.schedule import RateSchedule

STREAMS = ("pose", "joints", "imu", "force_torque", "metrics")
#: A sample due at exactly ``now`` is taken (float times computed as ``start + k / rate``).
_DUE_EPS_S = 1e-6


@dataclass(slots=True)
class TelemetryRecord:
    """One time_series record: its first sample's session time, its rows and its payload."""

    start: float
    samples: int
    streams: tuple[str, ...]
    payload: dict[str, Any]


@dataclass(slots=True)
class _Group:
    streams: tuple[str, ...]
    schedule: RateSchedule
    pending: list[float] = field(default_factory=list)


class Telemetry:
    """Samples every stream on its schedule; :meth:`records` hands out the closed records."""

    def __init__(self, model: RobotModel, rates_hz: Mapping[str, float], *, start: float = 0.0,
                 samples_per_record: int = 10, max_span_s: float = 0.5) -> None:
        unknown = set(rates_hz) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown telemetry stream(s) {sorted(unknown)}; expected {STREAMS}")
        self.model = model
        self.samples_per_record = samples_per_record
        self.max_span_s = max_span_s
        by_rate: dict[float, list[str]] = {}
        for stream in STREAMS:
            if stream in rates_hz:
                by_rate.setdefault(float(rates_hz[stream]), []).append(stream)
        self.groups = [_Group(tuple(streams), RateSchedule(rate, start)) for rate, streams in by_rate.items()]

    def next_sample_at(self) -> float:
        """When the next sample of any stream is due (session time)."""
        return min(group.schedule.next_time for group in self.groups)

    def records(self, now: float, *, final: bool = False) -> list[TelemetryRecord]:
        """Records of the samples due by ``now`` that are complete.

        ``final``: the session ends at ``now``; every sample before it goes out.
        """
        out: list[TelemetryRecord] = []
        until = now if final else now + _DUE_EPS_S
        for group in self.groups:
            group.pending.extend(group.schedule.due(until))
            while len(group.pending) >= self.samples_per_record:
                out.append(self._record(group, self.samples_per_record))
            if group.pending and (final or self._complete(group, now)):
                out.append(self._record(group, len(group.pending)))
        out.sort(key=lambda r: r.start)
        return out

    def _complete(self, group: _Group, now: float) -> bool:
        """Its deadline passed, or the stream's next sample would come too late to join it."""
        deadline = group.pending[0] + self.max_span_s
        return now >= deadline or group.schedule.next_time > deadline + _DUE_EPS_S

    def _record(self, group: _Group, count: int) -> TelemetryRecord:
        times = np.array(group.pending[:count])
        del group.pending[:count]
        payload = time_series_payload(self.model, group.streams, times)
        return TelemetryRecord(float(times[0]), count, group.streams, payload)
