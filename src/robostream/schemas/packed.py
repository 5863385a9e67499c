"""Packed time_series columns: numbers as little-endian float64 / int64 bytes (MessagePack ``bin``).

In a MessagePack frame any numeric column of a ``time_series`` payload may be packed instead of
a list: ``t`` as int64, every channel as float64, a joint matrix (``joints.angle`` ...) as one
row-major float64 block of n x dof values (or a list of packed rows). NaN keeps its meaning (a
missing sample); infinities are refused as in lists. The gateway checks packed columns with a
few length tests and one vectorised finiteness test, and copies them into the Avro record as
they are: an Avro ``array<double>`` block *is* little-endian float64, so no value ever becomes a
Python object (see :mod:`robostream.schemas.avro_columns`). Packed and list columns of the same
samples make byte-identical Kafka records. JSON frames keep lists.

The packing (:func:`pack_time_series`, :func:`unpack_time_series`) lives in the robot SDK
(:mod:`robostream_sdk.packed`); this module adds the gateway's vectorised checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

# The packing itself is the robot SDK's (one definition); the gateway's checks are below.
from robostream_sdk.packed import (
    JOINT_MATRICES,
    METRIC_COLUMNS,
    VECTORS,
    count,
    matrix_rows,
    pack_doubles,
    pack_longs,
    pack_matrix,
    pack_time_series,
    unpack_doubles,
    unpack_longs,
    unpack_time_series,
)

__all__ = [
    "JOINT_MATRICES",
    "METRIC_COLUMNS",
    "VECTORS",
    "count",
    "first_infinity",
    "matrix_rows",
    "pack_doubles",
    "pack_longs",
    "pack_matrix",
    "pack_time_series",
    "packed_value_columns",
    "unpack_doubles",
    "unpack_longs",
    "unpack_time_series",
]


def packed_value_columns(payload: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of every packed float64 column (or joint matrix / row) of a payload."""
    for group, vectors in VECTORS.items():
        data = payload.get(group)
        if not data:
            continue
        for name, axes in vectors:
            vector = data.get(name)
            if vector:
                for axis in axes:
                    if type(vector[axis]) is bytes:
                        yield f"{group}.{name}.{axis}", vector[axis]
    if payload.get("metrics"):
        for name in METRIC_COLUMNS:
            if type(payload["metrics"][name]) is bytes:
                yield f"metrics.{name}", payload["metrics"][name]
    joints = payload.get("joints")
    if joints:
        for name in JOINT_MATRICES:
            matrix = joints[name]
            if type(matrix) is bytes:
                yield f"joints.{name}", matrix
            elif type(matrix) is list:
                for i, row in enumerate(matrix):
                    if type(row) is bytes:
                        yield f"joints.{name}[{i}]", row
    for name, column in payload["channels"].items():
        if type(column) is bytes:
            yield f"channels.{name}", column


def _packed_doubles(payload: dict[str, Any]) -> list[bytes]:
    """Every packed float64 column of a validated payload (the fast walk of the success path)."""
    out = []
    for group, vectors in VECTORS.items():
        data = payload.get(group)
        if data:
            for name, _axes in vectors:
                vector = data.get(name)
                if vector:
                    out += [v for v in vector.values() if type(v) is bytes]
    metrics = payload.get("metrics")
    if metrics:
        out += [v for v in metrics.values() if type(v) is bytes]
    joints = payload.get("joints")
    if joints:
        for name in JOINT_MATRICES:
            matrix = joints[name]
            if type(matrix) is bytes:
                out.append(matrix)
            elif matrix:
                out += [row for row in matrix if type(row) is bytes]
    out += [v for v in payload["channels"].values() if type(v) is bytes]
    return out


def first_infinity(payload: dict[str, Any]) -> tuple[str, int, float] | None:
    """Path, index and value of the first infinite value among the packed columns, or None.

    One vectorised test over all packed columns joined; only a payload that has an infinity
    pays for finding which column holds it.
    """
    joined = b"".join(_packed_doubles(payload))
    if not joined or not np.isinf(np.frombuffer(joined, dtype="<f8")).any():
        return None
    for path, column in packed_value_columns(payload):
        values = np.frombuffer(column, dtype="<f8")
        bad = np.flatnonzero(np.isinf(values))
        if bad.size:
            return path, int(bad[0]), float(values[bad[0]])
    return None  # pragma: no cover (the joined test found one)
