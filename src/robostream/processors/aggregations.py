"""Tumbling-window aggregation per robot session: pure, vectorised and restart-exact.

Windows are aligned to the epoch (``[k*R, (k+1)*R)`` for R = 1 s, 1 min, 1 h) and driven by
**event time**, the sample timestamps:

* A session's *watermark* is the latest sample time it has seen. A window closes (is emitted)
  once the watermark passes ``window_end + allowed_lateness``.
* A sample is *late* when, at the time its record arrives, its window has already closed (the
  watermark before that record had passed the window's close time, or the window was closed
  idle). Late samples are dropped and counted (:attr:`SessionWindows.late`).
* Records whose ``seq`` is not above the session's highest seq so far are duplicates (SDK
  resends, replays after a crash) and are skipped.
* :meth:`SessionWindows.close_idle` closes windows whose close time a clock-extrapolated
  watermark has passed (the agent calls it when a session has been silent for ``idle_s``).

**Exactness.** Every statistic is a pure function of the sequence of samples of the window, in
stream order, whatever the batching: count, min, max and last are exact; sums are accumulated
strictly sequentially (``np.cumsum`` along the samples, starting from the stored float), so a
window split over any batches or interrupted by a worker restart (state from the changelog)
ends with bit-identical sums. Mean and standard deviation come from shifted sums (shift = the
window's first value of the metric: no cancellation for signals far from zero):
``mean = K + S1/n``, ``stddev = sqrt(max(0, S2/n - (S1/n)²))`` (population, ddof=0).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from robostream.processors.columns import TelemetryColumns, unit_of
from robostream.processors.records import MetricStats, WindowStats
from robostream.topics import RESOLUTION_US, StatsResolution

NEVER = -(1 << 62)
STATE_VERSION = 1


def window_start(timestamp: int, resolution: StatsResolution) -> int:
    """Start (µs) of the window of ``resolution`` holding ``timestamp``."""
    size = RESOLUTION_US[resolution]
    return timestamp - timestamp % size


# --- one window -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Window:
    """Running statistics of one window, one slot per session metric."""

    start: int
    count: np.ndarray  # int64
    shift: np.ndarray  # float64, NaN until the metric's first value in this window
    s1: np.ndarray  # sum of (x - shift), sequential
    s2: np.ndarray  # sum of (x - shift)², sequential
    low: np.ndarray
    high: np.ndarray
    last: np.ndarray
    last_ts: np.ndarray  # int64

    @classmethod
    def empty(cls, start: int, size: int) -> Window:
        nan = np.full(size, np.nan)
        return cls(start, np.zeros(size, np.int64), nan.copy(), np.zeros(size), np.zeros(size),
                   nan.copy(), nan.copy(), nan.copy(), np.zeros(size, np.int64))

    def grow(self, size: int) -> None:
        """Add slots for metrics the session has seen since this window opened."""
        extra = size - self.count.shape[0]
        if extra <= 0:
            return
        nan = np.full(extra, np.nan)
        self.count = np.concatenate([self.count, np.zeros(extra, np.int64)])
        self.shift = np.concatenate([self.shift, nan])
        self.s1 = np.concatenate([self.s1, np.zeros(extra)])
        self.s2 = np.concatenate([self.s2, np.zeros(extra)])
        self.low = np.concatenate([self.low, nan])
        self.high = np.concatenate([self.high, nan])
        self.last = np.concatenate([self.last, nan])
        self.last_ts = np.concatenate([self.last_ts, np.zeros(extra, np.int64)])

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(slots with samples, mean, stddev)``."""
        slots = np.flatnonzero(self.count > 0)
        n = self.count[slots].astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # only for values near 1e300
            m1 = self.s1[slots] / n
            mean = self.shift[slots] + m1
            variance = np.maximum(self.s2[slots] / n - m1 * m1, 0.0)
            return slots, mean, np.sqrt(variance)

    # state (de)serialisation: exact bytes of every array
    _ARRAYS = ("count", "shift", "s1", "s2", "low", "high", "last", "last_ts")

    def dump(self) -> list[Any]:
        return [self.start, *(getattr(self, name).tobytes() for name in self._ARRAYS)]

    @classmethod
    def load(cls, data: Sequence[Any]) -> Window:
        start, *blobs = data
        arrays = [
            np.frombuffer(blob, np.int64 if name in ("count", "last_ts") else np.float64).copy()
            for name, blob in zip(cls._ARRAYS, blobs, strict=True)
        ]
        return cls(int(start), *arrays)


#: up to this many segments, :func:`fold` folds them one by one (the live case: a few records,
#: one window per resolution); more (a catch-up batch) go through one padded array at once.
FEW_SEGMENTS = 4


#: the session slots of a matrix's rows: an index array, or a slice when they are consecutive
Slots = np.ndarray | slice


def fold(windows: Sequence[Window], slots: Slots, values: np.ndarray, times: np.ndarray,
         bounds: np.ndarray) -> None:
    """Fold consecutive segments of samples into windows, in order.

    Segment ``s`` is columns ``bounds[s]:bounds[s+1]`` of ``values`` (metrics ``slots`` x samples)
    and goes to ``windows[s]`` (distinct windows). Sums run sequentially within each window,
    from its stored value, through ``cumsum``: the result is the same float as adding the samples
    one by one, whatever the batching -- and whichever of the two equivalent paths runs.
    """
    if len(windows) <= FEW_SEGMENTS:
        for s, window in enumerate(windows):
            _fold_segment(window, slots, values, times, int(bounds[s]), int(bounds[s + 1]))
    else:
        if isinstance(slots, slice):
            slots = np.arange(slots.start, slots.stop, dtype=np.int64)
        _fold_segments(windows, slots, values, times, bounds)


def _fold_segment(window: Window, slots: Slots, values: np.ndarray, times: np.ndarray,
                  lo: int, hi: int) -> None:
    """One segment (columns ``lo:hi``) into one window: the per-call cost of a few NumPy calls."""
    part = values[:, lo:hi]
    valid = ~np.isnan(part)
    counts = valid.sum(axis=1)
    seen = counts > 0
    if not seen.all():  # metrics without a sample here are left untouched
        if not seen.any():
            return
        rows = np.flatnonzero(seen)
        if isinstance(slots, slice):
            slots = np.arange(slots.start, slots.stop, dtype=np.int64)
        part, valid, counts, slots = part[rows], valid[rows], counts[rows], slots[rows]
    index = np.arange(part.shape[0])
    targets = slots
    shift = window.shift[targets]
    fresh = np.isnan(shift)
    if fresh.any():
        shift = np.where(fresh, part[index, valid.argmax(axis=1)], shift)
    deltas = np.where(valid, part - shift[:, None], 0.0)
    width = hi - lo
    padded = np.empty((2, part.shape[0], width + 1))
    padded[0, :, 0] = window.s1[targets]
    padded[1, :, 0] = window.s2[targets]
    padded[0, :, 1:] = deltas
    with np.errstate(over="ignore", invalid="ignore"):  # values near 1e300 only
        np.multiply(deltas, deltas, out=padded[1, :, 1:])
        sums = np.cumsum(padded, axis=2)[..., -1]
    last = width - 1 - valid[:, ::-1].argmax(axis=1)  # the last valid column of each row
    window.shift[targets] = shift
    window.s1[targets] = sums[0]
    window.s2[targets] = sums[1]
    window.low[targets] = np.fmin(window.low[targets], np.fmin.reduce(part, axis=1))
    window.high[targets] = np.fmax(window.high[targets], np.fmax.reduce(part, axis=1))
    window.last[targets] = part[index, last]
    window.last_ts[targets] = times[lo + last]
    window.count[targets] += counts


def _fold_segments(windows: Sequence[Window], slots: np.ndarray, values: np.ndarray, times: np.ndarray,
                   bounds: np.ndarray) -> None:
    """Many segments at once, through one ``cumsum`` over a padded (segments x metrics x samples)
    array."""
    count_segments = len(windows)
    lengths = np.diff(bounds)
    valid = ~np.isnan(values)
    starts = bounds[:-1]
    columns = np.arange(values.shape[1])
    counts = np.add.reduceat(valid, starts, axis=1).T  # segments x metrics
    low = np.fmin.reduceat(values, starts, axis=1).T
    high = np.fmax.reduceat(values, starts, axis=1).T
    last = np.maximum.reduceat(np.where(valid, columns, -1), starts, axis=1).T
    first = np.minimum.reduceat(np.where(valid, columns, values.shape[1]), starts, axis=1).T
    seen = counts > 0
    # stored state of the target windows, segments x metrics
    shift = np.stack([w.shift[slots] for w in windows])
    fresh = np.isnan(shift) & seen
    if fresh.any():
        picked = values[np.arange(slots.shape[0])[None, :], np.minimum(first, values.shape[1] - 1)]
        shift = np.where(fresh, picked, shift)
    segment_of = np.repeat(np.arange(count_segments), lengths)
    deltas = np.where(valid, values - shift[segment_of].T, 0.0)  # metrics x samples
    width = int(lengths.max()) + 1
    position = columns - np.repeat(starts, lengths) + 1
    padded = np.zeros((2, count_segments, slots.shape[0], width))
    padded[0, :, :, 0] = np.stack([w.s1[slots] for w in windows])
    padded[1, :, :, 0] = np.stack([w.s2[slots] for w in windows])
    padded[0, segment_of, :, position] = deltas.T
    with np.errstate(over="ignore", invalid="ignore"):  # values near 1e300 only
        padded[1, segment_of, :, position] = (deltas * deltas).T
        sums = np.cumsum(padded, axis=3)[..., -1]  # 2 x segments x metrics
    for s, window in enumerate(windows):
        mask = seen[s]
        if not mask.any():
            continue
        rows = slots[mask]
        window.shift[rows] = shift[s, mask]
        window.s1[rows] = sums[0, s, mask]
        window.s2[rows] = sums[1, s, mask]
        window.low[rows] = np.fmin(window.low[rows], low[s, mask])
        window.high[rows] = np.fmax(window.high[rows], high[s, mask])
        ends = last[s, mask]
        window.last[rows] = values[np.flatnonzero(mask), ends]
        window.last_ts[rows] = times[ends]
        window.count[rows] += counts[s, mask]


# --- closed windows -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window ready to emit, with its statistics as arrays (one row per metric with samples)."""

    robot_id: str
    session_id: str
    resolution: StatsResolution
    start: int
    end: int
    metrics: list[str]
    units: list[str | None]
    count: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    stddev: np.ndarray
    last: np.ndarray
    last_ts: np.ndarray
    closed_by: str

    def to_record(self) -> WindowStats:
        """The derived record (``WindowStats``)."""
        metrics = [
            MetricStats(
                metric=name, count=int(self.count[i]), min=float(self.low[i]),
                max=float(self.high[i]), mean=float(self.mean[i]), stddev=float(self.stddev[i]),
                last=float(self.last[i]), last_timestamp=int(self.last_ts[i]), unit=self.units[i],
            )
            for i, name in enumerate(self.metrics)
        ]
        return WindowStats(self.robot_id, self.session_id, self.resolution, self.start, self.end,
                           metrics, self.closed_by)


# --- one session ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SessionWindows:
    """Open windows of every resolution for one robot session, and what decides lateness."""

    robot_id: str
    session_id: str
    lateness_us: int
    resolutions: tuple[StatsResolution, ...] = tuple(StatsResolution)
    metrics: list[str] = field(default_factory=list)
    slot_of: dict[str, int] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    last_seq: int = -1
    watermark: int = NEVER
    sealed: dict[StatsResolution, int] = field(default_factory=dict)
    open: dict[StatsResolution, dict[int, Window]] = field(default_factory=dict)
    late: int = 0
    duplicates: int = 0
    slot_cache: dict[tuple[str, ...], tuple[np.ndarray, Slots]] = field(default_factory=dict)

    def slots_for(self, names: tuple[str, ...]) -> np.ndarray:
        """Session slots of metric ``names`` (new metrics get new slots)."""
        return self._slots(names)[0]

    def _slots(self, names: tuple[str, ...]) -> tuple[np.ndarray, Slots]:
        """``(slots, index)``: the slots of ``names``, and the same as a slice when they are
        consecutive (the usual case: cheap views instead of fancy indexing). Cached per shape;
        a metric's slot never changes."""
        cached = self.slot_cache.get(names)
        if cached is not None:
            return cached
        slots = []
        for name in names:
            slot = self.slot_of.get(name)
            if slot is None:
                slot = self.slot_of[name] = len(self.metrics)
                self.metrics.append(name)
            slots.append(slot)
        array = np.asarray(slots, dtype=np.int64)
        first = slots[0] if slots else 0
        index: Slots = slice(first, first + len(slots)) if slots == list(range(first, first + len(slots))) \
            else array
        self.slot_cache[names] = (array, index)
        return array, index

    def fresh(self, records: Sequence[TelemetryColumns]) -> list[TelemetryColumns]:
        """The records not seen before (seq above the highest so far); updates ``last_seq``."""
        out = []
        for record in records:
            if record.seq > self.last_seq:
                self.last_seq = record.seq
                out.append(record)
            else:
                self.duplicates += 1
        return out

    def add(self, records: Sequence[TelemetryColumns]) -> None:
        """Fold fresh records (in stream order, all of this session) into the open windows."""
        start = 0
        while start < len(records):  # runs of records with the same metric names
            names = records[start].names
            end = start + 1
            while end < len(records) and records[end].names == names:
                end += 1
            self._add_run(records[start:end], names)
            start = end

    def _add_run(self, run: Sequence[TelemetryColumns], names: tuple[str, ...]) -> None:
        for record in run:
            self.units.update(record.units)
        slots = self._slots(names)[1]
        times = np.concatenate([r.times for r in run]) if len(run) > 1 else run[0].times
        values = np.concatenate([r.values for r in run], axis=1) if len(run) > 1 else run[0].values
        # watermark as each record arrives (before it): lateness is per record, batch-independent
        ends = np.maximum.accumulate(np.array([self.watermark] + [int(r.times.max()) for r in run]))
        before = np.repeat(ends[:-1], [len(r) for r in run])
        self.watermark = int(ends[-1])
        for resolution in self.resolutions:
            self._add_resolution(resolution, slots, values, times, before)

    def _add_resolution(self, resolution: StatsResolution, slots: Slots, values: np.ndarray,
                        times: np.ndarray, before: np.ndarray) -> None:
        size = RESOLUTION_US[resolution]
        starts = times - times % size
        late = (starts + size + self.lateness_us <= before) | (
            starts + size <= self.sealed.get(resolution, NEVER)
        )
        if late.any():
            self.late += int(late.sum())
            keep = ~late
            starts, values, times = starts[keep], values[:, keep], times[keep]
            if not starts.shape[0]:
                return
        windows = self.open.setdefault(resolution, {})
        cuts = np.flatnonzero(starts[1:] != starts[:-1]) + 1
        bounds = np.concatenate([[0], cuts, [starts.shape[0]]])
        targets = []
        for lo in bounds[:-1].tolist():
            begin = int(starts[lo])
            window = windows.get(begin)
            if window is None:
                window = windows[begin] = Window.empty(begin, len(self.metrics))
            else:
                window.grow(len(self.metrics))
            targets.append(window)
        fold(targets, slots, values, times, bounds)

    def close_ready(self) -> list[ClosedWindow]:
        """Close the windows the watermark has passed (end + lateness <= watermark)."""
        return self._close(self.watermark, "watermark")

    def close_idle(self, extrapolated_watermark: int) -> list[ClosedWindow]:
        """Close windows an extrapolated watermark (the session was silent) has passed."""
        return self._close(max(extrapolated_watermark, self.watermark), "idle")

    def _close(self, watermark: int, closed_by: str) -> list[ClosedWindow]:
        closed = []
        for resolution in self.resolutions:
            size = RESOLUTION_US[resolution]
            windows = self.open.get(resolution, {})
            for begin in sorted(windows):
                if begin + size + self.lateness_us > watermark:
                    break
                window = self._emit(resolution, windows.pop(begin), closed_by)
                if window.metrics:  # a window of missing samples only is not emitted
                    closed.append(window)
                self.sealed[resolution] = max(self.sealed.get(resolution, NEVER), begin + size)
        return closed

    def _emit(self, resolution: StatsResolution, window: Window, closed_by: str) -> ClosedWindow:
        window.grow(len(self.metrics))
        slots, mean, stddev = window.stats()
        names = [self.metrics[s] for s in slots]
        return ClosedWindow(
            self.robot_id, self.session_id, resolution, window.start,
            window.start + RESOLUTION_US[resolution], names,
            [unit_of(name, self.units) for name in names], window.count[slots],
            window.low[slots], window.high[slots], mean, stddev, window.last[slots],
            window.last_ts[slots], closed_by,
        )

    @property
    def open_windows(self) -> int:
        return sum(len(w) for w in self.open.values())

    # --- state (the Faust table value) ---------------------------------------------------------

    def dump(self) -> bytes:
        """The exact state as MessagePack (arrays as raw bytes)."""
        state = {
            "v": STATE_VERSION, "robot_id": self.robot_id, "session_id": self.session_id,
            "metrics": self.metrics, "units": self.units, "last_seq": self.last_seq,
            "watermark": self.watermark, "sealed": {r.value: v for r, v in self.sealed.items()},
            "open": [[r.value, w.dump()] for r, ws in self.open.items() for w in ws.values()],
        }
        packed: bytes = msgpack.packb(state, use_bin_type=True)
        return packed

    @classmethod
    def load(cls, data: bytes, lateness_us: int,
             resolutions: tuple[StatsResolution, ...] = tuple(StatsResolution)) -> SessionWindows:
        """Rebuild a session from :meth:`dump` output."""
        state = msgpack.unpackb(data, raw=False)
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unknown session state version {state.get('v')!r}")
        session = cls(state["robot_id"], state["session_id"], lateness_us, resolutions)
        session.metrics = list(state["metrics"])
        session.slot_of = {name: i for i, name in enumerate(session.metrics)}
        session.units = dict(state["units"])
        session.last_seq = int(state["last_seq"])
        session.watermark = int(state["watermark"])
        session.sealed = {StatsResolution(r): int(v) for r, v in state["sealed"].items()}
        for resolution, window in state["open"]:
            loaded = Window.load(window)
            session.open.setdefault(StatsResolution(resolution), {})[loaded.start] = loaded
        return session


def iter_stats(closed: ClosedWindow) -> Iterator[tuple[str, int, float, float, float, float, float]]:
    """``(metric, count, min, max, mean, stddev, last)`` per metric (for tests and tools)."""
    for i, name in enumerate(closed.metrics):
        yield (name, int(closed.count[i]), float(closed.low[i]), float(closed.high[i]),
               float(closed.mean[i]), float(closed.stddev[i]), float(closed.last[i]))


def is_finite_stats(closed: ClosedWindow) -> bool:
    """True when every statistic is a finite number (inputs never hold infinities)."""
    return all(math.isfinite(v) for row in iter_stats(closed) for v in row[2:])
