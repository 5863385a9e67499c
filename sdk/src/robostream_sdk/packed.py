"""Packed time_series columns: numbers as little-endian float64 / int64 bytes (MessagePack ``bin``).

In a MessagePack frame any numeric column of a ``time_series`` payload may be packed instead of
a list: ``t`` as int64, every channel as float64, a joint matrix (``joints.angle`` ...) as one
row-major float64 block of n x dof values (or a list of packed rows). NaN keeps its meaning (a
missing sample). The gateway copies packed columns into the Avro record as they are, so no value
ever becomes a Python object there. Packed and list columns of the same samples make
byte-identical Kafka records. JSON frames keep lists.

:func:`pack_time_series` is what the SDK applies before sending (lists with the standard
library, NumPy arrays with NumPy when it is installed: ``pip install robostream-sdk[numpy]``);
:func:`unpack_time_series` gives the list form back.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Any

#: The fixed channel groups of a time_series payload: group -> its vectors (or columns).
VECTORS: dict[str, tuple[tuple[str, str], ...]] = {
    "pose": (("position", "xyz"), ("orientation", "xyzw")),
    "force_torque": (("force", "xyz"), ("torque", "xyz")),
    "imu": (("linear_acceleration", "xyz"), ("angular_velocity", "xyz"), ("orientation", "xyzw")),
}
METRIC_COLUMNS = ("cpu_percent", "memory_mb", "network_latency_ms")
JOINT_MATRICES = ("angle", "velocity", "torque")

_NUMBER_TYPES = frozenset({float, int})
_INT_TYPES = frozenset({int})


def _is_ndarray(value: Any) -> bool:
    """A NumPy array, without importing NumPy (an optional extra of the SDK)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _unpacked(code: str, column: bytes) -> list[Any]:
    values = array(code, column)
    if sys.byteorder == "big":  # pragma: no cover (packed columns are little-endian)
        values.byteswap()
    return values.tolist()


def count(column: Any) -> int:
    """Values in a column: its length, or its packed size / 8."""
    return len(column) // 8 if type(column) is bytes else len(column)


def _pack(values: Any, dtype: str, kinds: str, plain: frozenset[type]) -> Any:
    """A 1-D column as packed bytes of ``dtype``; anything that is not plain numbers is returned
    as is (the contract's check then reports it in its list form)."""
    if type(values) is bytes:
        return values
    if _is_ndarray(values):
        if values.dtype.kind not in kinds or values.ndim != 1:
            return values.tolist()
        return values.astype(dtype, copy=False).tobytes()
    if type(values) is not list or not set(map(type, values)) <= plain:
        return values
    try:
        return struct.pack(f"<{len(values)}{'d' if dtype == '<f8' else 'q'}", *values)
    except (struct.error, OverflowError):
        return values


def pack_doubles(values: Any) -> Any:
    """A column as packed float64 bytes (else returned as is)."""
    return _pack(values, "<f8", "fiu", _NUMBER_TYPES)


def pack_longs(values: Any) -> Any:
    """A column of integers as packed int64 bytes (else returned as is)."""
    return _pack(values, "<i8", "iu", _INT_TYPES)


def pack_matrix(rows: Any) -> Any:
    """Rows of equal length as one packed row-major float64 block (else returned as is)."""
    if type(rows) is bytes:
        return rows
    if _is_ndarray(rows):
        if rows.dtype.kind not in "fiu" or rows.ndim != 2:
            return rows.tolist()
        return rows.astype("<f8", order="C", copy=False).tobytes()
    if type(rows) is not list or not rows or any(type(r) is not list for r in rows):
        return rows
    width = len(rows[0])
    packed = [pack_doubles(r) if len(r) == width else r for r in rows]
    if any(type(p) is not bytes for p in packed):
        return rows
    return b"".join(packed)


def unpack_doubles(column: Any) -> list[float]:
    """A packed float64 column as a list (lists pass through)."""
    if type(column) is not bytes:
        return list(column)
    return _unpacked("d", column)


def unpack_longs(column: Any) -> list[int]:
    """A packed int64 column as a list (lists pass through)."""
    if type(column) is not bytes:
        return list(column)
    return _unpacked("q", column)


def matrix_rows(matrix: Any, n: int) -> list[Any]:
    """A joint matrix as ``n`` rows: a packed block is cut into ``n`` packed rows."""
    if type(matrix) is not bytes:
        return list(matrix)
    if not matrix:
        return []
    width = len(matrix) // n
    return [matrix[i * width:(i + 1) * width] for i in range(n)]


def _map_vectors(payload: dict[str, Any], fn: Any) -> dict[str, Any]:
    out = dict(payload)
    for group, vectors in VECTORS.items():
        data = out.get(group)
        if type(data) is not dict:
            continue
        data = out[group] = dict(data)
        for name, axes in vectors:
            vector = data.get(name)
            if type(vector) is dict:
                data[name] = {k: fn(v) if k in axes else v for k, v in vector.items()}
    metrics = out.get("metrics")
    if type(metrics) is dict:
        out["metrics"] = {k: fn(v) if k in METRIC_COLUMNS else v for k, v in metrics.items()}
    channels = out.get("channels")
    if type(channels) is dict:
        out["channels"] = {k: fn(v) for k, v in channels.items()}
    return out


def pack_time_series(payload: dict[str, Any]) -> dict[str, Any]:
    """A time_series payload with every numeric column packed (a new dict; the input is kept).

    Lists and 1-D / 2-D NumPy arrays are packed; a column holding anything else (``None``,
    strings, ragged rows) stays as it is, so the contract's check names it.
    """
    if type(payload) is not dict:
        return payload
    out = _map_vectors(payload, pack_doubles)
    if "t" in out:
        out["t"] = pack_longs(out["t"])
    joints = out.get("joints")
    if type(joints) is dict:
        out["joints"] = {k: pack_matrix(v) if k in JOINT_MATRICES else v for k, v in joints.items()}
    return out


def unpack_time_series(payload: dict[str, Any]) -> dict[str, Any]:
    """The list form of a (validated) time_series payload with packed columns."""
    out = _map_vectors(payload, unpack_doubles)
    n = count(out["t"])
    out["t"] = unpack_longs(out["t"])
    joints = out.get("joints")
    if type(joints) is dict:
        out["joints"] = {
            k: [unpack_doubles(r) for r in matrix_rows(v, n)] if k in JOINT_MATRICES else v
            for k, v in joints.items()
        }
    return out
