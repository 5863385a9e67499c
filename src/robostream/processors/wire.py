"""Fast Avro writers for the two hot derived records (tested byte-equal to fastavro).

A :class:`~robostream.processors.records.TelemetryBucket` of a batch holds thousands of points
and a window holds ~50 metrics; fastavro wants Python lists of Python floats and writes them one
by one. These writers emit the same Avro binary straight from NumPy arrays: doubles as raw
little-endian bytes, longs as vectorised zigzag varints.

Both follow the records' ``.avsc``: the bucket writer is assembled from the schema's fields (an
encoder per Avro type), the window writer's hand-written layout is checked against the schema on
import (:func:`check_window_layout`); either refuses to load when the schema changed under it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from robostream.processors.aggregations import ClosedWindow
from robostream.processors.record_schema import RecordSchemaError
from robostream.processors.records import TelemetryBucket, WindowStats
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
    raw: bytes = encoded[keep].tobytes()
    return raw


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


def _long_column(values: Sequence[int] | np.ndarray) -> bytes:
    return _long_array(np.asarray(values))


#: A fast encoder per Avro type (see :func:`avro_layout`), for the fields of a ``TelemetryBucket``.
_ENCODERS: dict[Any, Callable[[Any], bytes]] = {
    "string": string,
    "long": varint,
    ("array", "long"): _long_column,
    ("array", "int"): _long_column,  # an Avro int is the same zigzag varint as a long
    ("map", ("array", "double")): _double_columns,
    ("array", "string"): lambda items: _strings(list(items)),
    ("map", "string"): _string_map,
}


def avro_layout(avro_type: Any) -> Any:
    """What an Avro type writes, without names, docs and defaults: a primitive's name,
    ``("array", T)``, ``("map", T)``, ``("union", T, ...)`` or a record's ``((field, T), ...)``."""
    if isinstance(avro_type, list):
        return ("union", *(avro_layout(branch) for branch in avro_type))
    if isinstance(avro_type, str):
        return avro_type
    kind = avro_type["type"]
    if kind == "record":
        return tuple((f["name"], avro_layout(f["type"])) for f in avro_type["fields"])
    if kind == "array":
        return ("array", avro_layout(avro_type["items"]))
    if kind == "map":
        return ("map", avro_layout(avro_type["values"]))
    return avro_layout(kind)


def bucket_writers(schema: dict[str, Any]) -> list[tuple[str, Callable[[Any], bytes]]]:
    """``(field, encoder)`` per field of a ``TelemetryBucket`` schema, in the schema's order."""
    writers = []
    for name, layout in avro_layout(schema):
        encoder = _ENCODERS.get(layout)
        if encoder is None:
            raise RecordSchemaError(
                f"the fast TelemetryBucket writer has no encoder for {name!r} ({layout})"
            )
        writers.append((name, encoder))
    return writers


_BUCKET_WRITERS = bucket_writers(TelemetryBucket.SCHEMA)


def telemetry_bucket(schema_id: int, bucket: TelemetryBucket) -> bytes:
    """The wire value of a :class:`TelemetryBucket` whose columns may be NumPy arrays."""
    return b"".join([wire_header(schema_id),
                     *[encode(getattr(bucket, name)) for name, encode in _BUCKET_WRITERS]])


@lru_cache(maxsize=4096)
def _unit(unit: str | None) -> bytes:
    return b"\0" if unit is None else b"\2" + string(unit)


#: What :func:`window_stats` writes, in order (it writes from a ``ClosedWindow``'s arrays, so by
#: hand): :func:`check_window_layout` holds it to the ``WindowStats`` schema.
WINDOW_STATS_LAYOUT: tuple[tuple[str, Any], ...] = (
    ("robot_id", "string"), ("session_id", "string"), ("resolution", "string"),
    ("window_start", "long"), ("window_end", "long"),
    ("metrics", ("array", (
        ("metric", "string"), ("count", "long"), ("min", "double"), ("max", "double"),
        ("mean", "double"), ("stddev", "double"), ("last", "double"), ("last_timestamp", "long"),
        ("unit", ("union", "null", "string")),
    ))),
    ("closed_by", "string"),
)


def check_window_layout(schema: dict[str, Any]) -> None:
    """Raise :class:`RecordSchemaError` unless :func:`window_stats` writes ``schema``."""
    layout = avro_layout(schema)
    if layout != WINDOW_STATS_LAYOUT:
        raise RecordSchemaError(
            f"the fast WindowStats writer writes {WINDOW_STATS_LAYOUT}, the schema is {layout}"
        )


check_window_layout(WindowStats.SCHEMA)


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
