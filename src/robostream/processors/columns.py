"""time_series record values -> :class:`TelemetryColumns` (absolute times + a metric matrix).

The fast path reads the Avro body directly when the writer schema is the catalogue's
``time_series`` schema: the header fields and ``payload.t`` are parsed, and the rest (every
channel group) is gathered into a NumPy matrix with a layout learnt from the first record of
that shape (:class:`_Layout`), instead of ``n`` Python floats per column (fastavro's generic
reader spends ~200 µs on a 10-sample record with every channel group on the reference machine;
this reader a small fraction of that). Any other writer schema (an evolved one) goes through
:func:`robostream.schemas.decode_record` and :func:`columns_from_payload`, which is also the
reference the fast path is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from fastavro.schema import to_parsing_canonical_form

from robostream.config import validate_id
from robostream.schemas import (
    WIRE_HEADER,
    DataType,
    SchemaIdResolver,
    ValidationError,
    decode_record,
    parsed_schema,
)
from robostream.schemas.envelope import record_key
from robostream.schemas.packed import METRIC_COLUMNS
from robostream.schemas.validation import ErrorCode

_VECTOR = ("x", "y", "z")
_QUATERNION = ("x", "y", "z", "w")
_JOINT_FIELDS = ("angle", "velocity", "torque")

#: Units of the fixed channel groups (free channels carry theirs in ``payload.units``).
GROUP_UNITS: dict[str, str] = {
    "pose.position": "m",
    "pose.orientation": "1",
    "joints.angle": "rad",
    "joints.velocity": "rad/s",
    "joints.torque": "N·m",
    "force_torque.force": "N",
    "force_torque.torque": "N·m",
    "imu.linear_acceleration": "m/s²",
    "imu.angular_velocity": "rad/s",
    "imu.orientation": "1",
    "metrics.cpu_percent": "%",
    "metrics.memory_mb": "MB",
    "metrics.network_latency_ms": "ms",
}


def unit_of(metric: str, channel_units: dict[str, str] | None = None) -> str | None:
    """The unit of a metric name (``joints.angle.3`` -> ``rad``), or None when unknown."""
    if channel_units and metric in channel_units:
        return channel_units[metric]
    return _group_unit(metric)


@lru_cache(maxsize=8192)
def _group_unit(metric: str) -> str | None:
    group = metric.rsplit(".", 1)[0]
    return GROUP_UNITS.get(group) or GROUP_UNITS.get(metric)


@dataclass(slots=True)
class TelemetryColumns:
    """One time_series record as columns: ``values[i]`` holds metric ``names[i]`` per sample."""

    robot_id: str
    session_id: str
    seq: int
    timestamp: int
    times: np.ndarray  # int64 µs since the epoch, n
    names: tuple[str, ...]
    values: np.ndarray  # float64, len(names) x n; NaN = missing sample
    joint_names: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """The Kafka key of the session's records."""
        return record_key(self.robot_id, self.session_id)

    def __len__(self) -> int:
        return int(self.times.shape[0])


# --- the reference path: a decoded payload ---------------------------------------------------------


def _group_names(prefix: str, axes: tuple[str, ...]) -> list[str]:
    return [f"{prefix}.{axis}" for axis in axes]


def columns_from_payload(
    robot_id: str, session_id: str, seq: int, timestamp: int, payload: dict[str, Any]
) -> TelemetryColumns:
    """Columns of a decoded time_series payload (Python lists, as the codec returns it)."""
    n = len(payload["t"])
    names: list[str] = []
    rows: list[Any] = []

    def add(prefix: str, series: dict[str, list[float]], axes: tuple[str, ...]) -> None:
        names.extend(_group_names(prefix, axes))
        rows.extend(series[axis] for axis in axes)

    pose = payload.get("pose")
    if pose:
        add("pose.position", pose["position"], _VECTOR)
        add("pose.orientation", pose["orientation"], _QUATERNION)
    joints = payload.get("joints")
    joint_names: tuple[str, ...] = ()
    if joints:
        joint_names = tuple(joints.get("names") or ())
        for name in _JOINT_FIELDS:
            matrix = joints.get(name) or []
            if matrix:
                columns = list(zip(*matrix, strict=True))
                names.extend(f"joints.{name}.{j}" for j in range(len(columns)))
                rows.extend(columns)
    ft = payload.get("force_torque")
    if ft:
        add("force_torque.force", ft["force"], _VECTOR)
        add("force_torque.torque", ft["torque"], _VECTOR)
    imu = payload.get("imu")
    if imu:
        add("imu.linear_acceleration", imu["linear_acceleration"], _VECTOR)
        add("imu.angular_velocity", imu["angular_velocity"], _VECTOR)
        if imu.get("orientation"):
            add("imu.orientation", imu["orientation"], _QUATERNION)
    metrics = payload.get("metrics")
    if metrics:
        add("metrics", metrics, METRIC_COLUMNS)
    channels = payload.get("channels") or {}
    for name, column in channels.items():
        names.append(f"channels.{name}")
        rows.append(column)
    units = {f"channels.{k}": v for k, v in (payload.get("units") or {}).items()}
    values = np.array(rows, dtype=np.float64).reshape(len(names), n)
    times = timestamp + np.asarray(payload["t"], dtype=np.int64)
    return TelemetryColumns(
        robot_id, session_id, seq, timestamp, times, tuple(names), values, joint_names, units
    )


# --- the fast path: the Avro body ----------------------------------------------------------------


class _Body:
    """A cursor over an Avro binary body."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos

    def long(self) -> int:
        buf = self.buf
        pos = self.pos
        b = buf[pos]
        pos += 1
        n = b & 0x7F
        shift = 7
        while b & 0x80:
            b = buf[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
        self.pos = pos
        return (n >> 1) ^ -(n & 1)

    def string(self) -> str:
        size = self.long()
        start = self.pos
        self.pos = start + size
        if self.pos > len(self.buf):
            raise IndexError("string runs past the end")
        return self.buf[start:self.pos].decode()

    def block_count(self) -> int:
        count = self.long()
        if count < 0:
            self.long()  # block size in bytes
            count = -count
        return count

    def doubles(self) -> list[int]:
        """Skip an ``array<double>``; return the byte offset of each of its items."""
        offsets: list[int] = []
        while True:
            count = self.block_count()
            if not count:
                return offsets
            start = self.pos
            self.pos = start + 8 * count
            offsets.extend(range(start, self.pos, 8))

    def longs(self) -> list[int]:
        out: list[int] = []
        while True:
            count = self.block_count()
            if not count:
                return out
            out.extend(self.long() for _ in range(count))

    def strings(self) -> list[str]:
        out: list[str] = []
        while True:
            count = self.block_count()
            if not count:
                return out
            out.extend(self.string() for _ in range(count))

    def matrix(self) -> list[list[int]]:
        """Skip an ``array<array<double>>``; return the item offsets of each row."""
        rows: list[list[int]] = []
        while True:
            count = self.block_count()
            if not count:
                break
            rows.extend(self.doubles() for _ in range(count))
        if len({len(r) for r in rows}) > 1:
            raise _bad("joint rows differ in length")
        return rows


def _bad(detail: str) -> ValidationError:
    return ValidationError(ErrorCode.MALFORMED_RECORD, f"time_series record: {detail}")


_BYTE = np.arange(8, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where a payload's doubles are, relative to the byte after ``payload.t``.

    Two payloads with equal *skeletons* (every byte that is not a double: union branches, counts,
    names, units) have their doubles at the same places, so a layout seen once decodes later
    records with two NumPy gathers instead of a parse (robots send the same layout every time).
    """

    names: tuple[str, ...]
    joint_names: tuple[str, ...]
    units: dict[str, str]
    gather: np.ndarray  # m*n*8 byte indexes, metric-major
    skeleton_index: np.ndarray  # byte indexes of the non-double bytes
    skeleton: np.ndarray  # their values
    size: int  # bytes from the end of t to the end of the record
    t_offsets: np.ndarray | None = None  # set when the layout starts at payload.t (t included)

    def with_t(self, t_bytes: np.ndarray, offsets: list[int]) -> _Layout:
        """This layout widened to start at ``payload.t`` (whose bytes must then match too)."""
        shift = t_bytes.shape[0]
        return _Layout(
            self.names, self.joint_names, self.units, self.gather + shift,
            np.concatenate([np.arange(shift), self.skeleton_index + shift]),
            np.concatenate([t_bytes, self.skeleton]), self.size + shift,
            np.asarray(offsets, dtype=np.int64),
        )

    def values(self, rest: np.ndarray, n: int) -> np.ndarray | None:
        """The m x n matrix of ``rest`` (the bytes after ``t``), or None if the skeleton differs."""
        if rest.shape[0] != self.size or not np.array_equal(rest[self.skeleton_index], self.skeleton):
            return None
        matrix: np.ndarray = rest[self.gather].view("<f8").reshape(len(self.names), n)
        return matrix


def _parse_layout(body: _Body, n: int) -> _Layout:
    """Parse the payload after ``t`` into a :class:`_Layout` (offsets relative to its start)."""
    base = body.pos
    rows: list[list[int]] = []  # per metric: the byte offset of each sample

    def vectors(count: int) -> None:
        for _ in range(count):
            offsets = body.doubles()
            if len(offsets) != n:
                raise _bad("a column's length differs from len(t)")
            rows.append(offsets)

    pose = body.long() == 1
    if pose:
        vectors(7)
    dofs = (0, 0, 0)
    joint_names: tuple[str, ...] = ()
    if body.long() == 1:
        joint_names = tuple(body.strings())
        found = []
        for _ in _JOINT_FIELDS:
            matrix = body.matrix()
            if matrix and len(matrix) != n:
                raise _bad("joint rows differ from len(t)")
            dof = len(matrix[0]) if matrix else 0
            found.append(dof)
            rows.extend([row[j] for row in matrix] for j in range(dof))
        dofs = (found[0], found[1], found[2])
    ft = body.long() == 1
    if ft:
        vectors(6)
    imu = body.long() == 1
    imu_orientation = False
    if imu:
        vectors(6)
        imu_orientation = body.long() == 1
        if imu_orientation:
            vectors(4)
    metrics = body.long() == 1
    if metrics:
        vectors(3)
    channels: list[str] = []
    while count := body.block_count():
        for _ in range(count):
            channels.append(body.string())
            vectors(1)
    units: dict[str, str] = {}
    while count := body.block_count():
        for _ in range(count):
            name = body.string()
            units[f"channels.{name}"] = body.string()
    names = _names_for((pose, dofs, ft, imu, imu_orientation, metrics, tuple(channels)))
    size = len(body.buf) - base
    starts = np.asarray(rows, dtype=np.int64).reshape(len(names), n) - base
    gather = (starts[..., None] + _BYTE).reshape(-1)
    is_double = np.zeros(size, dtype=bool)
    is_double[gather] = True
    skeleton_index = np.flatnonzero(~is_double)
    if gather.size and (gather.min() < 0 or gather.max() >= size):
        raise _bad("a column runs past the end of the record")
    rest = np.frombuffer(body.buf, np.uint8, offset=base)
    return _Layout(names, joint_names, units, gather, skeleton_index, rest[skeleton_index].copy(), size)


_LayoutKey = tuple[Any, ...]
_names_cache: dict[_LayoutKey, tuple[str, ...]] = {}


def _names_for(key: _LayoutKey) -> tuple[str, ...]:
    names = _names_cache.get(key)
    if names is not None:
        return names
    pose, dofs, ft, imu, imu_orientation, metrics, channels = key
    out: list[str] = []
    if pose:
        out += _group_names("pose.position", _VECTOR) + _group_names("pose.orientation", _QUATERNION)
    for name, dof in zip(_JOINT_FIELDS, dofs, strict=True):
        out += [f"joints.{name}.{j}" for j in range(dof)]
    if ft:
        out += _group_names("force_torque.force", _VECTOR) + _group_names("force_torque.torque", _VECTOR)
    if imu:
        out += _group_names("imu.linear_acceleration", _VECTOR)
        out += _group_names("imu.angular_velocity", _VECTOR)
        if imu_orientation:
            out += _group_names("imu.orientation", _QUATERNION)
    if metrics:
        out += _group_names("metrics", METRIC_COLUMNS)
    out += [f"channels.{c}" for c in channels]
    names = tuple(out)
    if len(_names_cache) < 4096:
        _names_cache[key] = names
    return names


class TimeSeriesReader:
    """Decode time_series record values (Confluent wire format) into :class:`TelemetryColumns`."""

    def __init__(self, resolver: SchemaIdResolver) -> None:
        self.resolver = resolver
        self._fast: dict[int, bool] = {}
        self._ids: set[str] = set()
        self._layouts: dict[tuple[int, int], _Layout] = {}
        self._with_t: dict[int, _Layout] = {}
        self._ours = to_parsing_canonical_form(parsed_schema(DataType.TIME_SERIES))

    def read(self, value: bytes) -> TelemetryColumns:
        """Decode one record value; raises :class:`ValidationError` when it is not valid."""
        if len(value) < WIRE_HEADER.size:
            raise _bad("value too short for the Confluent wire format")
        magic, schema_id = WIRE_HEADER.unpack_from(value)
        if magic != 0 or not self._is_fast(schema_id):
            return self._slow(value)
        try:
            return self._fast_read(value)
        except ValidationError:
            raise
        except (IndexError, ValueError, UnicodeDecodeError) as exc:
            raise _bad(f"Avro body does not decode ({type(exc).__name__}: {exc})") from None

    def _is_fast(self, schema_id: int) -> bool:
        fast = self._fast.get(schema_id)
        if fast is None:
            try:
                writer = self.resolver.schema_for(schema_id)
            except LookupError:
                return False  # the slow path reports the unknown schema
            fast = to_parsing_canonical_form(writer) == self._ours
            self._fast[schema_id] = fast
        return fast

    def _fast_read(self, value: bytes) -> TelemetryColumns:
        body = _Body(value, WIRE_HEADER.size)
        timestamp = body.long()
        robot_id = self._checked_id(body.string(), "robot_id")
        session_id = self._checked_id(body.string(), "session_id")
        if body.string() != DataType.TIME_SERIES:
            raise _bad("data_type is not time_series")
        seq = body.long()
        payload_start = body.pos
        payload = np.frombuffer(value, np.uint8, offset=payload_start)
        # 1. the same t and layout as a record seen before: two gathers
        layout = self._with_t.get(payload.shape[0])
        if layout is not None and layout.t_offsets is not None:
            n = layout.t_offsets.shape[0]
            values = layout.values(payload, n)
            if values is not None:
                return TelemetryColumns(
                    robot_id, session_id, seq, timestamp, layout.t_offsets + timestamp,
                    layout.names, values, layout.joint_names, layout.units,
                )
        # 2. parse t, then the same layout as before after it
        offsets = body.longs()
        n = len(offsets)
        if not n:
            raise _bad("payload.t is empty")
        t_size = body.pos - payload_start
        rest = payload[t_size:]
        key = (n, rest.shape[0])
        layout = self._layouts.get(key)
        values = layout.values(rest, n) if layout is not None else None
        if layout is None or values is None:  # 3. a new layout: parse it
            layout = _parse_layout(body, n)
            if len(self._layouts) < 1024:
                self._layouts[key] = layout
            values = layout.values(rest, n)
            assert values is not None
        if len(self._with_t) < 1024:
            self._with_t[payload.shape[0]] = layout.with_t(payload[:t_size].copy(), offsets)
        return TelemetryColumns(
            robot_id, session_id, seq, timestamp, np.asarray(offsets, dtype=np.int64) + timestamp,
            layout.names, values, layout.joint_names, layout.units,
        )

    def _checked_id(self, value: str, what: str) -> str:
        if value not in self._ids:
            try:
                validate_id(value, what)
            except ValueError as exc:
                raise ValidationError(ErrorCode.INVALID_ID, str(exc), path=what) from None
            if len(self._ids) < 100_000:
                self._ids.add(value)
        return value

    def _slow(self, value: bytes) -> TelemetryColumns:
        envelope = decode_record(value, self.resolver)
        if envelope.data_type is not DataType.TIME_SERIES:
            raise _bad(f"data_type is {envelope.data_type}, not time_series")
        return columns_from_payload(
            envelope.robot_id, envelope.session_id, envelope.seq, envelope.timestamp_us,
            envelope.payload,
        )


ColumnsReader = Callable[[bytes], TelemetryColumns]
