"""Telemetry as stored: columnar minute buckets and a min/max level-of-detail pyramid.

The bucket pattern (what MongoDB's own time-series collections do inside, done explicitly so it
works the same on SecantusDB and MongoDB):

* ``telemetry``: **one document per (robot, session, channel group, minute)** --
  ``_id = robot/session/group/minute µs``. The sample times (``t``: little-endian int64 µs
  offsets from the minute), the samples' identities (``seq``: int64, ``i``: int32, the contract's
  dedupe key) and every channel (``values.<dotted name>``: little-endian float64, NaN = missing)
  are packed binary columns (BSON binData), so a reader decodes an hour of 100 Hz telemetry as
  ~60 ``numpy.frombuffer`` calls per channel instead of 360,000 Python floats. ``summary`` holds
  the minute's count/min/max/mean per channel.
* ``telemetry_lod``: the pyramid (1 s bins per minute, 10 s and 1 min bins per hour, 1 h bins per
  day; small documents of their own, since a server decodes a minute bucket whole), one
  document per (robot, session, channel group, level, span), each channel a packed ``(4, bins)`` float64
  matrix: count, min, max, mean (count 0 and NaN for an empty bin).

A **group** is a channel group (``pose``, ``joints``, ``force_torque``, ``imu``, ``metrics``,
``channels``): each lands in documents of its own, so ``fields=pose`` reads only pose documents
(a document's columns are decoded whole by the server, projection or not), and streams sampled
at different rates do not pad each other's columns with NaNs.

This module is pure (NumPy and BSON values, no I/O); :mod:`robostream.sinks.bucket_store`
writes the documents, :mod:`robostream.api.history` reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bson import Binary

from robostream.processors import TelemetryBucket
from robostream.sinks import keys
from robostream.times import DAY_US, HOUR_US, MINUTE_US, SECOND_US, micros_to_datetime

#: Levels of the pyramid: bin length in µs, finest first.
LEVELS: dict[str, int] = {"1s": SECOND_US, "10s": 10 * SECOND_US, "1m": MINUTE_US, "1h": HOUR_US}
#: Span of one ``telemetry_lod`` document per level.
LOD_SPAN_US: dict[str, int] = {"1s": MINUTE_US, "10s": HOUR_US, "1m": HOUR_US, "1h": DAY_US}
#: Rows of a channel's stats matrix.
COUNT, MIN, MAX, MEAN = 0, 1, 2, 3

F8, I8, I4 = np.dtype("<f8"), np.dtype("<i8"), np.dtype("<i4")


def stream_group(names: Iterable[str]) -> str:
    """The group of channels: their channel groups (the name's first part), sorted, joined by ``+``."""
    return "+".join(sorted({name.split(".", 1)[0] for name in names})) or "empty"


def pack(array: np.ndarray, dtype: np.dtype) -> Binary:
    """A column as BSON binData (little-endian ``dtype``)."""
    return Binary(np.ascontiguousarray(array, dtype=dtype).tobytes())


def unpack(value: Any, dtype: np.dtype) -> np.ndarray:
    """A packed column back as a read-only NumPy array (no copy)."""
    return np.frombuffer(value, dtype=dtype)


def nested(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted names as nested fields (MongoDB field names hold no dots; projections such as
    ``values.pose`` then select a whole channel group)."""
    out: dict[str, Any] = {}
    for name, column in columns.items():
        *parents, leaf = name.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = column
    return out


def lookup(tree: Mapping[str, Any] | None, name: str) -> Any:
    """The value at dotted ``name`` in a nested document, or None."""
    node: Any = tree
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# -- level-of-detail statistics ---------------------------------------------------------------


def bin_stats(times: np.ndarray, values: np.ndarray, start_us: int, bin_us: int,
              bins: int) -> np.ndarray:
    """``(channels, 4, bins)`` count/min/max/mean of sorted ``times`` in bins of ``bin_us`` from
    ``start_us`` (NaN samples are not counted; empty bins: count 0, NaN stats)."""
    out = empty_stats(values.shape[0], bins)
    if times.size == 0:
        return out
    index = (times - start_us) // bin_us
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    where = index[starts]
    finite = ~np.isnan(values)
    counts = np.add.reduceat(finite, starts, axis=1).astype(np.float64)
    sums = np.add.reduceat(np.where(finite, values, 0.0), starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, COUNT, where] = counts
        out[:, MIN, where] = np.fmin.reduceat(values, starts, axis=1)
        out[:, MAX, where] = np.fmax.reduceat(values, starts, axis=1)
        out[:, MEAN, where] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out


def empty_stats(channels: int, bins: int) -> np.ndarray:
    out = np.full((channels, 4, bins), np.nan)
    out[:, COUNT, :] = 0.0
    return out


def combine(stats: np.ndarray, group: int) -> np.ndarray:
    """Merge every ``group`` consecutive bins of ``(channels, 4, bins)`` stats (the last group
    may be shorter): counts add, min of mins, max of maxes, count-weighted means."""
    bins = stats.shape[2]
    starts = np.arange(0, bins, group)
    counts = stats[:, COUNT, :]
    weighted = np.where(counts > 0, stats[:, MEAN, :] * counts, 0.0)
    out = np.empty((stats.shape[0], 4, starts.size))
    total = np.add.reduceat(counts, starts, axis=1)
    out[:, COUNT, :] = total
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, MIN, :] = np.fmin.reduceat(stats[:, MIN, :], starts, axis=1)
        out[:, MAX, :] = np.fmax.reduceat(stats[:, MAX, :], starts, axis=1)
        out[:, MEAN, :] = np.where(total > 0, np.add.reduceat(weighted, starts, axis=1) / total, np.nan)
    return out


# -- minute buckets ----------------------------------------------------------------------------


@dataclass
class Minute:
    """Every stored sample of one (robot, session, channel group, minute), in time order."""

    robot_id: str
    session_id: str
    group: str
    minute_us: int
    times: np.ndarray = field(default_factory=lambda: np.empty(0, I8))  # absolute µs
    seqs: np.ndarray = field(default_factory=lambda: np.empty(0, I8))
    indexes: np.ndarray = field(default_factory=lambda: np.empty(0, I4))
    names: list[str] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: np.empty((0, 0), F8))  # (channels, n)
    units: dict[str, str] = field(default_factory=dict)
    joint_names: list[str] = field(default_factory=list)
    rev: int = 0  # the stored document's revision (0: not stored)

    def __len__(self) -> int:
        return int(self.times.size)

    @property
    def doc_id(self) -> str:
        return minute_doc_id(self.robot_id, self.session_id, self.group, self.minute_us)

    def merge(self, times: np.ndarray, seqs: np.ndarray, indexes: np.ndarray, names: Sequence[str],
              values: np.ndarray) -> np.ndarray:
        """Add samples (``values``: ``(len(names), n)``); samples already held (same ``seq``
        and ``i``) are skipped. Returns which of the given samples were new (a bool mask)."""
        times = np.asarray(times, dtype=I8)
        seqs = np.asarray(seqs, dtype=I8)
        indexes = np.asarray(indexes, dtype=I4)
        values = np.asarray(values, dtype=F8).reshape(len(names), times.size)
        mine, theirs = self._aligned(list(names), values)
        before = len(self)
        all_times = np.concatenate([self.times, times])
        all_seqs = np.concatenate([self.seqs, seqs])
        all_indexes = np.concatenate([self.indexes, indexes])
        all_values = np.concatenate([mine, theirs], axis=1)
        new = np.ones(times.size, dtype=bool)
        appended = before == 0 or (seqs.size and int(seqs.min()) > int(self.seqs.max())
                                   and int(times.min()) >= int(self.times[-1]))
        if not appended or _has_duplicates(seqs, indexes):
            keep = _first_of_each(all_seqs, all_indexes)
            new[:] = False
            new[keep[keep >= before] - before] = True
            order = keep[np.lexsort((all_indexes[keep], all_seqs[keep], all_times[keep]))]
            all_times, all_seqs = all_times[order], all_seqs[order]
            all_indexes, all_values = all_indexes[order], all_values[:, order]
        self.times, self.seqs, self.indexes, self.values = all_times, all_seqs, all_indexes, all_values
        return new

    def _aligned(self, names: list[str], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both matrices over the union of channel names (NaN where a side lacks one)."""
        if names == self.names:
            return self.values.reshape(len(names), len(self)), values
        union = self.names + [n for n in names if n not in set(self.names)]
        mine = np.full((len(union), len(self)), np.nan)
        if self.names:
            mine[: len(self.names)] = self.values
        position = {n: i for i, n in enumerate(union)}
        theirs = np.full((len(union), values.shape[1]), np.nan)
        theirs[[position[n] for n in names]] = values
        self.names = union
        return mine, theirs

    def lod(self, level: str) -> np.ndarray:
        """This minute's bins of ``level`` (``(channels, 4, bins)``, bins within the minute)."""
        bin_us = LEVELS[level]
        return bin_stats(self.times, self.values, self.minute_us, bin_us, max(1, MINUTE_US // bin_us))

    def document(self) -> dict[str, Any]:
        """The ``telemetry`` document (see the module docstring)."""
        minute = self.minute_us
        packed = {name: pack(self.values[i], F8) for i, name in enumerate(self.names)}
        summary = self.lod("1m")[:, :, 0]
        doc: dict[str, Any] = {
            "_id": self.doc_id, "robot_id": self.robot_id, "session_id": self.session_id,
            "group": self.group, "data_type": "time_series", "rev": self.rev + 1,
            "timestamp": micros_to_datetime(minute), "timestamp_us": minute,
            "bucket_minute": micros_to_datetime(minute),
            "bucket_hour": micros_to_datetime(minute - minute % HOUR_US),
            "first_us": int(self.times[0]) if len(self) else minute,
            "last_us": int(self.times[-1]) if len(self) else minute,
            "n": len(self), "channels": list(self.names),
            "t": pack(self.times - minute, I8), "seq": pack(self.seqs, I8), "i": pack(self.indexes, I4),
            "values": nested(packed),
            "summary": nested({name: _summary(summary[i]) for i, name in enumerate(self.names)}),
            "size_bytes": sum(len(b) for b in packed.values()) + 20 * len(self),
        }
        if self.units:
            doc["units"] = nested(dict(self.units))
        if self.joint_names:
            doc["joint_names"] = list(self.joint_names)
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Minute:
        """A ``telemetry`` document back as a :class:`Minute` (channels the projection left
        out are absent)."""
        minute = int(doc["timestamp_us"])
        times = unpack(doc["t"], I8) + minute
        names = [n for n in doc.get("channels", []) if lookup(doc.get("values"), n) is not None]
        values = (np.vstack([unpack(lookup(doc["values"], n), F8) for n in names]) if names
                  else np.empty((0, times.size)))
        return cls(
            robot_id=doc["robot_id"], session_id=doc["session_id"], group=doc["group"],
            minute_us=minute, times=times,
            seqs=unpack(doc["seq"], I8) if "seq" in doc else np.zeros(times.size, I8),
            indexes=unpack(doc["i"], I4) if "i" in doc else np.zeros(times.size, I4),
            names=names, values=values, units={k: str(v) for k, v in flatten(doc.get("units") or {}).items()},
            joint_names=list(doc.get("joint_names") or []), rev=int(doc.get("rev", 0)),
        )


def _summary(stats: np.ndarray) -> dict[str, Any]:
    count = int(stats[COUNT])
    if not count:
        return {"count": 0, "min": None, "max": None, "mean": None}
    return {"count": count, "min": float(stats[MIN]), "max": float(stats[MAX]),
            "mean": float(stats[MEAN])}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested fields back to dotted names (the inverse of :func:`nested`)."""
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def _has_duplicates(seqs: np.ndarray, indexes: np.ndarray) -> bool:
    if seqs.size < 2:
        return False
    return _first_of_each(seqs, indexes).size != seqs.size


def _first_of_each(seqs: np.ndarray, indexes: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of every ``(seq, index)`` pair."""
    order = np.lexsort((indexes, seqs))  # stable: the earlier of two equal pairs comes first
    s, i = seqs[order], indexes[order]
    first = np.r_[True, (s[1:] != s[:-1]) | (i[1:] != i[:-1])]
    return np.sort(order[first])


def minute_doc_id(robot_id: str, session_id: str, group: str, minute_us: int) -> str:
    """``_id`` of a ``telemetry`` document: ``robot/session/group/minute µs``."""
    return f"{keys.session_doc_id(robot_id, session_id)}/{group}/{int(minute_us)}"


def lod_doc_id(robot_id: str, session_id: str, group: str, level: str, span_start_us: int) -> str:
    """``_id`` of a ``telemetry_lod`` document: ``robot/session/group/level/span start µs``."""
    return f"{keys.session_doc_id(robot_id, session_id)}/{group}/{level}/{int(span_start_us)}"


def minutes_of(bucket: TelemetryBucket) -> list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray,
                                                        list[str], np.ndarray]]:
    """A bucket (one minute) as ``(group, minute, times, seqs, indexes, names, values)`` per
    channel group: each group's columns land in a document of their own, so a query for
    ``pose`` reads (and the server decodes) only pose documents."""
    names = list(bucket.values)
    times = np.asarray(bucket.timestamps, dtype=I8)
    seqs = np.asarray(bucket.seqs, dtype=I8)
    indexes = np.asarray(bucket.indexes, dtype=I4)
    by_group: dict[str, list[str]] = {}
    for name in names:
        by_group.setdefault(stream_group([name]), []).append(name)
    minute = int(bucket.bucket_minute)
    return [(group, minute, times, seqs, indexes, members,
             np.vstack([np.asarray(bucket.values[n], dtype=F8) for n in members]))
            for group, members in sorted(by_group.items())]


# -- level-of-detail documents -----------------------------------------------------------------


@dataclass
class LodSpan:
    """One ``telemetry_lod`` document: a level's bins over one span, per channel."""

    robot_id: str
    session_id: str
    group: str
    level: str
    span_start_us: int
    names: list[str] = field(default_factory=list)
    stats: np.ndarray = field(default_factory=lambda: np.empty((0, 4, 0)))
    rev: int = 0

    def __post_init__(self) -> None:
        if self.stats.shape[2] == 0:
            self.stats = empty_stats(len(self.names), self.bins)

    @property
    def bin_us(self) -> int:
        return LEVELS[self.level]

    @property
    def bins(self) -> int:
        return LOD_SPAN_US[self.level] // self.bin_us

    @property
    def doc_id(self) -> str:
        return lod_doc_id(self.robot_id, self.session_id, self.group, self.level, self.span_start_us)

    def put(self, names: Sequence[str], first_us: int, stats: np.ndarray) -> None:
        """Set the bins from ``first_us`` on (replacing what they held: a minute's bins are
        always computed from the whole minute)."""
        for name in names:
            if name not in self.names:
                self.names.append(name)
                self.stats = np.concatenate([self.stats, empty_stats(1, self.bins)])
        rows = [self.names.index(n) for n in names]
        at = (first_us - self.span_start_us) // self.bin_us
        self.stats[rows, :, at:at + stats.shape[2]] = stats

    def document(self) -> dict[str, Any]:
        return {
            "_id": self.doc_id, "robot_id": self.robot_id, "session_id": self.session_id,
            "group": self.group, "level": self.level, "rev": self.rev + 1,
            "timestamp": micros_to_datetime(self.span_start_us), "span_start_us": self.span_start_us,
            "bin_us": self.bin_us, "bins": self.bins, "channels": list(self.names),
            "stats": nested({n: pack(self.stats[i], F8) for i, n in enumerate(self.names)}),
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> LodSpan:
        names = [n for n in doc.get("channels", []) if lookup(doc.get("stats"), n) is not None]
        bins = int(doc["bins"])
        stats = (np.stack([unpack(lookup(doc["stats"], n), F8).reshape(4, bins) for n in names])
                 if names else np.empty((0, 4, bins)))
        return cls(robot_id=doc["robot_id"], session_id=doc["session_id"], group=doc["group"],
                   level=doc["level"], span_start_us=int(doc["span_start_us"]), names=names,
                   stats=stats if names else empty_stats(0, bins), rev=int(doc.get("rev", 0)))


def span_start(level: str, timestamp_us: int) -> int:
    span = LOD_SPAN_US[level]
    return timestamp_us - timestamp_us % span
