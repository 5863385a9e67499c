"""When things happen: clocks (real or virtual) and schedules of sample times.

Sample times are computed (``start + k / rate``), never accumulated, so rates do not drift and a
late wake-up only means more samples are due at once. With a :class:`VirtualClock` the simulator
runs as fast as it can compute, which makes a 10-second rate check take a fraction of that.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds on a monotonic scale, and a way to wait for a moment on it."""

    def now(self) -> float: ...

    async def sleep_until(self, moment: float) -> None: ...


class RealClock:
    """Wall time (``time.monotonic``)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - time.monotonic()))


class VirtualClock:
    """Time that jumps to wherever one sleeps to (tests; one clock per simulated robot)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    async def sleep_until(self, moment: float) -> None:
        self._now = max(self._now, moment)
        await asyncio.sleep(0)


class RateSchedule:
    """Times ``start + k / rate_hz`` for k = 0, 1, 2 ..."""

    def __init__(self, rate_hz: float, start: float = 0.0) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
        self.rate_hz = rate_hz
        self.start = start
        self._k = 0

    @property
    def next_time(self) -> float:
        return self.start + self._k / self.rate_hz

    def due(self, until: float) -> list[float]:
        """Every time before ``until`` not handed out yet."""
        last = math.ceil((until - self.start) * self.rate_hz - 1e-9)  # first k at or after `until`
        times = [self.start + k / self.rate_hz for k in range(self._k, max(self._k, last))]
        self._k = max(self._k, last)
        return times


class BurstSchedule:
    """Bursts of ``burst_s`` at ``fps`` every ``every_s``, the first at ``start + phase_s``."""

    def __init__(self, fps: float, burst_s: float, every_s: float, start: float = 0.0,
                 phase_s: float = 0.0) -> None:
        self.fps = fps
        self.every_s = every_s
        self.start = start + phase_s
        self.per_burst = round(burst_s * fps) if fps > 0 else 0
        self._burst = 0
        self._frame = 0

    def _time(self) -> float:
        return self.start + self._burst * self.every_s + self._frame / self.fps

    def due(self, until: float) -> list[float]:
        """Every frame time before ``until`` not handed out yet."""
        if self.per_burst <= 0:
            return []
        times: list[float] = []
        while (moment := self._time()) < until:
            times.append(moment)
            self._frame += 1
            if self._frame >= self.per_burst:
                self._burst += 1
                self._frame = 0
        return times
