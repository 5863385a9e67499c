"""How telemetry records map to points (and, through :mod:`robostream.sinks.buckets`, documents).

A time_series record is a columnar batch of ``n`` samples (``payload.t`` holds ``n`` offsets
from the envelope timestamp). **A point is one sample**: one instant of one robot, identified by
``(robot_id, session_id, data_type, seq, index)`` (index = position in its record), with every
metric measured at that instant (``pose.position.x``, ``joints.angle.3``, ``channels.<name>``
...: the processors' metric names). A record of ``n`` samples is ``n`` points; the robot SDK
sends 10 samples per record at 100 Hz, so 10 records are 100 points.

Raw ``time_series`` records and the processors' ``derived.telemetry_bucketed`` records end up in
the same form, :class:`Telemetry`: the processors' :class:`TelemetryBucket` (one per minute),
so landing either topic -- or both -- writes the same documents and the same Redis members:

* the points of one channel group within one minute are one MongoDB ``telemetry`` document,
  ``_id = robot/session/group/minute`` (:mod:`robostream.sinks.buckets`);
* a **point** is one Redis ``telemetry:...:latest`` member: canonical JSON of
  ``{"seq", "i", "ts_us", "values": {metric: value}}`` (NaN samples left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from robostream.processors import TelemetryBucket
from robostream.processors.bucketing import bucket_records
from robostream.processors.columns import TelemetryColumns


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Telemetry of one record (raw topic) or one bucket (derived topic), as minute buckets."""

    buckets: list[TelemetryBucket]

    @classmethod
    def from_columns(cls, columns: TelemetryColumns) -> Telemetry:
        """A raw record, split at minute boundaries exactly as the processors do."""
        return cls(bucket_records([columns]))

    @property
    def robot_id(self) -> str:
        return self.buckets[0].robot_id

    @property
    def session_id(self) -> str:
        return self.buckets[0].session_id

    @property
    def point_count(self) -> int:
        return sum(len(b) for b in self.buckets)


def _plain(column: Any) -> list[Any]:
    """A column as a list of Python numbers (buckets may hold NumPy arrays)."""
    return column.tolist() if hasattr(column, "tolist") else list(column)


def single_record(bucket: TelemetryBucket) -> bool:
    """Whether every point of ``bucket`` comes from one record (one ``seq``): true of raw records."""
    seqs = _plain(bucket.seqs)
    return bool(seqs) and min(seqs) == max(seqs)


def points(bucket: TelemetryBucket) -> list[dict[str, Any]]:
    """Every point of ``bucket`` in stream order: ``{"seq", "i", "ts_us", "values"}``."""
    names = list(bucket.values)
    columns = [_plain(bucket.values[name]) for name in names]
    rows = zip(*columns, strict=True) if columns else iter([()] * len(bucket.timestamps))
    out = []
    for seq, index, ts, row in zip(_plain(bucket.seqs), _plain(bucket.indexes),
                                   _plain(bucket.timestamps), rows, strict=True):
        out.append({"seq": seq, "i": index, "ts_us": ts,
                    "values": {n: v for n, v in zip(names, row, strict=True) if v == v}})
    return out


def point_members(bucket: TelemetryBucket) -> list[tuple[int, bytes]]:
    """``(ts_us, canonical JSON)`` of every point of ``bucket``: the bytes of
    ``canonical_json(point)`` for each of :func:`points`.

    The metric names are sorted once, so each point's dict is built in canonical key order and
    orjson writes it without sorting. A bucket without NaN (the common case; one sum over every
    column finds out) builds each point's ``values`` with one ``dict(zip(...))``; a bucket with
    NaN leaves those samples out value by value, as in :func:`points`.
    """
    names = sorted(bucket.values)
    columns = [_plain(bucket.values[name]) for name in names]
    total = sum(map(sum, columns))
    if total != total:  # some NaN (or two overflowing sums of opposite sign): filter per value
        rows: Any = ({n: v for n, v in zip(names, row, strict=True) if v == v}
                     for row in zip(*columns, strict=True))
    elif columns:
        rows = (dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True))
    else:
        rows = ({} for _ in range(len(bucket.timestamps)))
    dumps = orjson.dumps
    return [(ts, dumps({"i": index, "seq": seq, "ts_us": ts, "values": values}))
            for seq, index, ts, values in zip(_plain(bucket.seqs), _plain(bucket.indexes),
                                              _plain(bucket.timestamps), rows, strict=True)]
