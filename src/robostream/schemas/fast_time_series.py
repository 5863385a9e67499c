"""The gateway's one-pass path for packed time_series payloads: check and write Avro together.

The general path validates a payload into a new Avro-shaped dict (a dict per nested record),
checks it, then writes it; for the common shape, every column packed as the robot SDK sends it,
:func:`encode_packed_payload` does the same checks while it writes, with no intermediate dict.
It accepts only what the general path accepts and writes the same bytes (a property test holds
the two together); anything it is not sure of -- a list column, a missing field, an unknown
key, a bad length, an infinity -- returns None, and the general path then validates the payload
and names the error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robostream.schemas.avro_columns import packed_longs_bytes, string_bytes, write_long
from robostream.schemas.packed import METRIC_COLUMNS
from robostream.schemas.payloads import CHANNEL_RE

_ZERO = b"\x00"
_NULL = b"\x00"
_RECORD = b"\x02"  # union branch 1 (zigzag)
_PAYLOAD_KEYS = frozenset({"t", "pose", "joints", "force_torque", "imu", "metrics", "channels", "units"})
_JOINT_KEYS = frozenset({"names", "angle", "velocity", "torque"})
_IMU_KEYS = frozenset({"linear_acceleration", "angular_velocity", "orientation"})
_XYZ = ("x", "y", "z")
_XYZW = ("x", "y", "z", "w")
_CHANNELS_OK: set[str] = set()


class _NotThisPathError(Exception):
    """Not the fast path's shape: the general path decides."""


def _string(value: Any) -> bytes:
    if type(value) is not str:
        raise _NotThisPathError
    return string_bytes(value)


def _times(t: Any) -> tuple[bytes, int]:
    if type(t) is not bytes or not t or len(t) & 7:
        raise _NotThisPathError
    return packed_longs_bytes(t) + _ZERO, len(t)


class _Writer:
    __slots__ = ("columns", "head", "out", "width")

    def __init__(self, width: int) -> None:
        self.width = width  # bytes per column: 8 x n
        self.head = write_long(width >> 3)
        self.out: list[bytes] = []
        self.columns: list[bytes] = []  # every float64 block, for one infinity test

    def column(self, value: Any) -> None:
        if type(value) is not bytes or len(value) != self.width:
            raise _NotThisPathError
        self.out += (self.head, value, _ZERO)
        self.columns.append(value)

    def vector(self, value: Any, axes: tuple[str, ...]) -> None:
        if type(value) is not dict or len(value) != len(axes):
            raise _NotThisPathError
        for axis in axes:
            self.column(value.get(axis))

    def group(self, value: Any, keys: frozenset[str], fields: tuple[tuple[str, tuple[str, ...]], ...],
              ) -> None:
        """A ``["null", record]`` union of vectors."""
        if value is None:
            self.out.append(_NULL)
            return
        if type(value) is not dict or value.keys() != keys:
            raise _NotThisPathError
        self.out.append(_RECORD)
        for name, axes in fields:
            self.vector(value[name], axes)

    def joints(self, value: Any) -> None:
        if value is None:
            self.out.append(_NULL)
            return
        if type(value) is not dict or not value.keys() <= _JOINT_KEYS or "angle" not in value:
            raise _NotThisPathError
        names = value.get("names", [])
        if type(names) is not list:
            raise _NotThisPathError
        angle = value["angle"]
        if type(angle) is not bytes or not angle:
            raise _NotThisPathError
        dof = len(names) or len(angle) // self.width
        if dof < 1 or len(angle) != dof * self.width:
            raise _NotThisPathError
        self.out.append(_RECORD)
        self.out.append(b"".join([write_long(len(names)), *map(_string, names), _ZERO]) if names else _ZERO)
        self.matrix(angle, dof)
        for field in ("velocity", "torque"):
            matrix = value.get(field, b"")
            if matrix == b"" or matrix == []:
                self.out.append(_ZERO)
            elif type(matrix) is bytes and len(matrix) == dof * self.width:
                self.matrix(matrix, dof)
            else:
                raise _NotThisPathError

    def matrix(self, block: bytes, dof: int) -> None:
        """n rows of dof doubles, row-major: Avro's array of arrays, one row per block."""
        n = self.width >> 3
        row = dof * 8
        prefix = write_long(dof)
        rows = [block[i * row:(i + 1) * row] for i in range(n)]
        self.out += (self.head, prefix, (_ZERO + prefix).join(rows), _ZERO, _ZERO)
        self.columns.append(block)

    def imu(self, value: Any) -> None:
        if value is None:
            self.out.append(_NULL)
            return
        if (type(value) is not dict or not value.keys() <= _IMU_KEYS
                or "linear_acceleration" not in value or "angular_velocity" not in value):
            raise _NotThisPathError
        self.out.append(_RECORD)
        self.vector(value["linear_acceleration"], _XYZ)
        self.vector(value["angular_velocity"], _XYZ)
        orientation = value.get("orientation")
        if orientation is None:
            self.out.append(_NULL)
        else:
            self.out.append(_RECORD)
            self.vector(orientation, _XYZW)

    def metrics(self, value: Any) -> None:
        if value is None:
            self.out.append(_NULL)
            return
        if type(value) is not dict or len(value) != 3:
            raise _NotThisPathError
        self.out.append(_RECORD)
        for name in METRIC_COLUMNS:
            self.column(value.get(name))

    def channels(self, channels: Any, units: Any) -> None:
        if type(channels) is not dict or type(units) is not dict:
            raise _NotThisPathError
        if channels:
            self.out.append(write_long(len(channels)))
            for name, column in channels.items():
                if name not in _CHANNELS_OK:
                    if type(name) is not str or not CHANNEL_RE.fullmatch(name):
                        raise _NotThisPathError
                    if len(_CHANNELS_OK) < 4096:
                        _CHANNELS_OK.add(name)
                self.out.append(_string(name))
                self.column(column)
        self.out.append(_ZERO)
        if units:
            self.out.append(write_long(len(units)))
            for name, unit in units.items():
                if name not in channels:
                    raise _NotThisPathError
                self.out += (_string(name), _string(unit))
        self.out.append(_ZERO)


_POSE_KEYS = frozenset({"position", "orientation"})
_POSE = (("position", _XYZ), ("orientation", _XYZW))
_FORCE_TORQUE_KEYS = frozenset({"force", "torque"})
_FORCE_TORQUE = (("force", _XYZ), ("torque", _XYZ))


def encode_packed_payload(payload: Any) -> bytes | None:
    """The Avro body of a packed time_series payload (the ``payload`` field), or None.

    None means "not sure": the payload is not entirely packed, or not in the canonical shape,
    or not valid; the caller then takes the general path, which validates and reports.
    """
    try:
        if type(payload) is not dict or not payload.keys() <= _PAYLOAD_KEYS:
            return None
        times, width = _times(payload.get("t"))
        writer = _Writer(width)
        writer.out.append(times)
        writer.group(payload.get("pose"), _POSE_KEYS, _POSE)
        writer.joints(payload.get("joints"))
        writer.group(payload.get("force_torque"), _FORCE_TORQUE_KEYS, _FORCE_TORQUE)
        writer.imu(payload.get("imu"))
        writer.metrics(payload.get("metrics"))
        writer.channels(payload.get("channels", {}), payload.get("units", {}))
    except (_NotThisPathError, ValueError):  # ValueError: a string UTF-8 cannot encode
        return None
    if writer.columns and np.isinf(np.frombuffer(b"".join(writer.columns), dtype="<f8")).any():
        return None
    return b"".join(writer.out)
