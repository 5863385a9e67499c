"""Fast Avro writers for the two hot derived records (tested byte-equal to fastavro).

A :class:`~robostream.processors.records.TelemetryBucket` of a batch holds thousands of points
and a window holds ~50 metrics; fastavro wants Python lists of Python floats and writes them one
by one. These writers emit the same Avro binary straight from NumPy arrays: doubles as raw
little-endian bytes, longs as vectorised zigzag varints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from robostream.processors.aggregations import ClosedWindow
from robostream.processors.records import TelemetryBucket
from robostream.schemas.avro_columns import write_long
from robostream.schemas.codec import wire_header

_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)  # ten 7-bit groups cover 64 bits


varint = write_long  # one Avro ``long`` (zigzag varint)


_SMALL = [varint(i) for i in range(1024)]


def long_(value: int) -> bytes:
    return _SMALL[value] if 0 <= value < 1024 else varint(value)


def varints(values: np.ndarray) -> bytes:
    """The zigzag varints of an int64 array, concatenated (an Avro array block's items)."""
    v = np.asarray(values, dtype=np.int64)
    if not v.size:
        return b""
    z = ((v << 1) ^ (v >> 63)).astype(np.uint64)
    groups = (z[:, None] >> _SHIFTS[None, :]) & np.uint64(0x7F)  # n x 10
    rest = z[:, None] >> _SHIFTS[None, :]
    used = np.maximum((rest != 0).sum(axis=1), 1)  # bytes per value
    keep = np.arange(10)[None, :] < used[:, None]
    more = np.arange(10)[None, :] < (used - 1)[:, None]
    encoded = (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return encoded[keep].tobytes()


def varint_list(values: np.ndarray) -> list[bytes]:
    """The zigzag varint of each int64 value, as separate byte strings."""
    v = np.asarray(values, dtype=np.int64)
    if not v.size:
        return []
    z = ((v << 1) ^ (v >> 63)).astype(np.uint64)
    rest = z[:, None] >> _SHIFTS[None, :]
    used = np.maximum((rest != 0).sum(axis=1), 1)
    more = np.arange(10)[None, :] < (used - 1)[:, None]
    encoded = ((rest & np.uint64(0x7F)) | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    flat = encoded[np.arange(10)[None, :] < used[:, None]].tobytes()
    ends = np.cumsum(used).tolist()
    begins = [0, *ends[:-1]]
    return [flat[b:e] for b, e in zip(begins, ends, strict=True)]


@lru_cache(maxsize=65536)
def string(text: str) -> bytes:
    """An Avro ``string`` (length + UTF-8), cached: names repeat."""
    raw = text.encode()
    return long_(len(raw)) + raw


def _long_array(values: np.ndarray) -> bytes:
    n = int(values.shape[0])
    return long_(n) + varints(values) + b"\0" if n else b"\0"


def _double_columns(values: Mapping[str, np.ndarray]) -> bytes:
    if not values:
        return b"\0"
    parts = [long_(len(values))]
    for name, column in values.items():
        array = np.asarray(column, dtype="<f8")
        n = int(array.shape[0])
        parts.append(string(name))
        parts.append(long_(n) + array.tobytes() + b"\0" if n else b"\0")
    parts.append(b"\0")
    return b"".join(parts)


def _strings(items: Sequence[str]) -> bytes:
    return long_(len(items)) + b"".join(string(i) for i in items) + b"\0" if items else b"\0"


def _string_map(items: Mapping[str, str]) -> bytes:
    if not items:
        return b"\0"
    return long_(len(items)) + b"".join(string(k) + string(v) for k, v in items.items()) + b"\0"


def telemetry_bucket(schema_id: int, bucket: TelemetryBucket) -> bytes:
    """The wire value of a :class:`TelemetryBucket` whose columns may be NumPy arrays."""
    return b"".join((
        wire_header(schema_id),
        string(bucket.robot_id), string(bucket.session_id), string(bucket.data_type),
        varint(bucket.bucket_hour), varint(bucket.bucket_minute),
        _long_array(np.asarray(bucket.timestamps)), _long_array(np.asarray(bucket.seqs)),
        _long_array(np.asarray(bucket.indexes)),
        _double_columns({k: np.asarray(v) for k, v in bucket.values.items()}),
        _strings(list(bucket.joint_names)), _string_map(bucket.units),
    ))


@lru_cache(maxsize=4096)
def _unit(unit: str | None) -> bytes:
    return b"\0" if unit is None else b"\2" + string(unit)


def window_stats(schema_id: int, window: ClosedWindow) -> bytes:
    """The wire value of the ``WindowStats`` record of a closed window."""
    m = len(window.metrics)
    doubles = np.stack([window.low, window.high, window.mean, window.stddev, window.last], axis=1)
    raw = doubles.astype("<f8").tobytes()
    counts = window.count.tolist()
    stamps = varint_list(window.last_ts)
    parts = [
        wire_header(schema_id), string(window.robot_id), string(window.session_id),
        string(window.resolution.value), varint(window.start), varint(window.end),
    ]
    if m:
        parts.append(long_(m))
        for i, name in enumerate(window.metrics):
            parts += (string(name), long_(counts[i]), raw[40 * i:40 * i + 40], stamps[i],
                      _unit(window.units[i]))
    parts.append(b"\0")
    parts.append(string(window.closed_by))
    return b"".join(parts)
