"""The derived records: what the processors put on the derived topics and the sinks land.

Three record types, each an Avro schema registered under its topic's subject
(``<topic>-value``, TopicNameStrategy) and encoded in the Confluent wire format (magic byte 0,
4-byte big-endian schema id, Avro binary), exactly like the raw ``<prefix>.<data_type>`` topics:

* :class:`TelemetryBucket` on ``<prefix>.derived.telemetry_bucketed``: the telemetry points of
  one robot session within one minute (from one or more consecutive ``time_series`` records),
  flattened to named columns, with ``bucket_hour`` and ``bucket_minute``. A point is identified
  by ``(robot_id, session_id, data_type, seq, index)`` (the sinks' idempotency key).
* :class:`WindowStats` on ``<prefix>.derived.stats_{1s,1m,1h}``: one closed tumbling window of
  one robot session, with count/min/max/mean/stddev/last of every metric seen in it.
  :meth:`WindowStats.aggregates` yields one :class:`MetricAggregate` per metric (a Redis
  ``stats:{robot}:{session}:{metric}:{resolution}`` key, an ``aggregations`` document).
  Idempotency key ``(robot_id, session_id, resolution, window_start)`` (+ ``metric``).
* :class:`FrameBatch` on ``<prefix>.derived.frames``: the output of one compaction flush (an
  H.264 segment of a camera, or the depth / point-cloud frames of a batch): the encoded objects for the S3
  sink (``objects``, bytes inline, S3 keys chosen by the processor), one :class:`FrameMeta` per
  source frame for ``frames_metadata`` and Redis ``frames:`` keys (with the thumbnail bytes for
  GridFS), and :class:`BundlePart` pieces of the hourly ``{hour}_bundle.tar.gz``.

The schemas are ``robostream/schemas/avro/derived/<Name>.avsc`` (the one source: the dataclasses
below are checked against them on import, their Avro datums derived from them, see
:mod:`robostream.processors.record_schema`). Every record's Kafka key is ``robot_id/session_id``
(UTF-8), like the raw topics. Timestamps are
microseconds since the Unix epoch, UTC (Avro ``long``). Metric names are dotted
paths: ``pose.position.x``, ``pose.orientation.w``, ``joints.angle.3``, ``joints.velocity.3``,
``joints.torque.3``, ``force_torque.force.z``, ``imu.linear_acceleration.x``,
``imu.angular_velocity.z``, ``imu.orientation.w``, ``metrics.cpu_percent``,
``metrics.memory_mb``, ``metrics.network_latency_ms``, ``channels.<name>``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, TypeVar

import fastavro
import numpy as np

from robostream.errors import RobostreamError
from robostream.processors.frame_records import FRAME_BATCH_SCHEMA

# re-exported: the frame records live apart (pool processes import only those)
from robostream.processors.frame_records import BundlePart as BundlePart
from robostream.processors.frame_records import FrameKind as FrameKind
from robostream.processors.frame_records import FrameMeta as FrameMeta
from robostream.processors.frame_records import FrameTier as FrameTier
from robostream.processors.frame_records import StoredObject as StoredObject
from robostream.processors.frame_records import TierName as TierName
from robostream.processors.record_schema import AvroRecord, load_schema, nested_schema, register
from robostream.schemas.codec import MAGIC_BYTE, WIRE_HEADER
from robostream.schemas.envelope import record_key
from robostream.schemas.resolver import SchemaIdResolver
from robostream.times import HOUR_US as HOUR_US  # re-exported: the derived records' time units
from robostream.times import MINUTE_US as MINUTE_US
from robostream.topics import RESOLUTION_US as RESOLUTION_US
from robostream.topics import StatsResolution

NAMESPACE = "io.robostream.derived"


class DerivedRecordError(RobostreamError, ValueError):
    """A derived record value that is not in the wire format or names an unknown schema."""


class _SessionRecord(AvroRecord):
    """A record of a derived topic: keyed like the raw topics, by its session."""

    __slots__ = ()
    robot_id: str
    session_id: str

    @property
    def key(self) -> bytes:
        return record_key(self.robot_id, self.session_id)


# --- telemetry ----------------------------------------------------------------------------------


TELEMETRY_BUCKET_SCHEMA = load_schema("TelemetryBucket")


@dataclass(frozen=True, slots=True)
class TelemetryBucket(_SessionRecord):
    """Telemetry points of one robot session in one minute bucket (columnar).

    Point identity (the sinks' idempotency key) is ``(robot_id, session_id, data_type, seqs[i],
    indexes[i])``: a replay may group points into buckets differently, never change a point.
    """

    SCHEMA: ClassVar[dict[str, Any]] = TELEMETRY_BUCKET_SCHEMA

    robot_id: str
    session_id: str
    bucket_hour: int
    bucket_minute: int
    timestamps: Sequence[int] | np.ndarray
    seqs: Sequence[int] | np.ndarray
    indexes: Sequence[int] | np.ndarray
    values: Mapping[str, Sequence[float] | np.ndarray]
    joint_names: Sequence[str] = field(default_factory=list)
    units: Mapping[str, str] = field(default_factory=dict)
    data_type: str = "time_series"

    def __len__(self) -> int:
        return len(self.timestamps)

    def points(self) -> Iterator[TelemetryPoint]:
        """One :class:`TelemetryPoint` per point, in stream order (NaN values left out)."""
        names = list(self.values)
        columns = [self.values[name] for name in names]
        for i, ts in enumerate(self.timestamps):
            values = {}
            for name, column in zip(names, columns, strict=True):
                value = float(column[i])
                if value == value:  # not NaN
                    values[name] = value
            yield TelemetryPoint(int(self.seqs[i]), int(self.indexes[i]), int(ts), values)

    def slices(self) -> Iterator[RecordSlice]:
        """The points grouped by source record: one :class:`RecordSlice` per ``seq``.

        ``(robot_id, session_id, data_type, seq, bucket_minute)`` identifies a slice whatever the
        batching (a source record crossing a minute has one slice in each minute's bucket): a
        Mongo ``telemetry`` document per slice stays idempotent.
        """
        n = len(self.timestamps)
        start = 0
        while start < n:
            seq = self.seqs[start]
            end = start + 1
            while end < n and self.seqs[end] == seq:
                end += 1
            yield RecordSlice(
                seq=int(seq), bucket_hour=self.bucket_hour, bucket_minute=self.bucket_minute,
                timestamps=[int(t) for t in self.timestamps[start:end]],
                indexes=[int(i) for i in self.indexes[start:end]],
                values={k: [float(x) for x in v[start:end]] for k, v in self.values.items()},
            )
            start = end


@dataclass(frozen=True, slots=True)
class RecordSlice:
    """The points of one source record (``seq``) inside one minute bucket."""

    seq: int
    bucket_hour: int
    bucket_minute: int
    timestamps: list[int]
    indexes: list[int]
    values: dict[str, list[float]]


@dataclass(frozen=True, slots=True)
class TelemetryPoint:
    """One point of a :class:`TelemetryBucket`: its identity, time and non-missing values."""

    seq: int
    index: int
    timestamp: int
    values: dict[str, float]


# --- window aggregates --------------------------------------------------------------------------


WINDOW_STATS_SCHEMA = load_schema("WindowStats")
METRIC_STATS_SCHEMA = nested_schema(WINDOW_STATS_SCHEMA, "MetricStats")


@dataclass(frozen=True, slots=True)
class MetricStats(AvroRecord):
    """count, min, max, mean, stddev (population) and last of one metric in one window."""

    SCHEMA: ClassVar[dict[str, Any]] = METRIC_STATS_SCHEMA

    metric: str
    count: int
    min: float
    max: float
    mean: float
    stddev: float
    last: float
    last_timestamp: int
    unit: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricAggregate(MetricStats):
    """One metric of one window, flat: its :class:`MetricStats` with the window and session (a
    Redis ``stats:`` key or an ``aggregations`` document)."""

    robot_id: str
    session_id: str
    resolution: str
    window_start: int
    window_end: int

    @property
    def redis_key(self) -> str:
        """``stats:{robot}:{session}:{metric}:{resolution}`` (design.md)."""
        return f"stats:{self.robot_id}:{self.session_id}:{self.metric}:{self.resolution}"


@dataclass(frozen=True, slots=True)
class WindowStats(_SessionRecord):
    """One closed window of one robot session with the statistics of every metric seen in it."""

    SCHEMA: ClassVar[dict[str, Any]] = WINDOW_STATS_SCHEMA

    robot_id: str
    session_id: str
    resolution: StatsResolution
    window_start: int
    window_end: int
    metrics: list[MetricStats]
    closed_by: str = "watermark"

    def aggregates(self) -> Iterator[MetricAggregate]:
        """One flat :class:`MetricAggregate` per metric."""
        for m in self.metrics:
            yield MetricAggregate(
                **{name: getattr(m, name) for name in _METRIC_STATS_FIELDS},
                robot_id=self.robot_id, session_id=self.session_id, resolution=self.resolution.value,
                window_start=self.window_start, window_end=self.window_end,
            )


_METRIC_STATS_FIELDS = tuple(f.name for f in fields(MetricStats))


# --- frames -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameBatch(_SessionRecord):
    """One compaction flush of one camera: objects to store, frame metadata, bundle parts.

    A batch may hold only a bundle's last part (no objects, no frames) when an hour closes.
    """

    SCHEMA: ClassVar[dict[str, Any]] = FRAME_BATCH_SCHEMA

    robot_id: str
    session_id: str
    camera_id: str
    kind: FrameKind
    objects: list[StoredObject]
    frames: list[FrameMeta]
    bundle_parts: list[BundlePart] = field(default_factory=list)


register(MetricStats, WindowStats, FrameBatch, TelemetryBucket)


# --- the codec ----------------------------------------------------------------------------------


class DerivedRecord(Protocol):
    SCHEMA: ClassVar[dict[str, Any]]

    @property
    def key(self) -> bytes: ...

    def to_avro(self) -> dict[str, Any]: ...


R = TypeVar("R", TelemetryBucket, WindowStats, FrameBatch)

#: Every derived record type, by its Avro full name.
RECORD_TYPES: dict[str, type[Any]] = {
    f"{NAMESPACE}.{cls.SCHEMA['name']}": cls for cls in (TelemetryBucket, WindowStats, FrameBatch)
}


_texts: dict[type[Any], str] = {}
_parsed_schemas: dict[type[Any], Any] = {}


def schema_str(record_type: type[Any]) -> str:
    """The Avro schema text of a derived record type (what the registry stores)."""
    text = _texts.get(record_type)
    if text is None:
        text = _texts[record_type] = json.dumps(record_type.SCHEMA, separators=(",", ":"))
    return text


def _parsed(record_type: type[Any]) -> Any:
    parsed = _parsed_schemas.get(record_type)
    if parsed is None:
        parsed = fastavro.parse_schema(json.loads(schema_str(record_type)), named_schemas={})
        _parsed_schemas[record_type] = parsed
    return parsed


def subject_for(topic: str) -> str:
    """The schema subject of a derived topic (TopicNameStrategy): ``<topic>-value``."""
    return f"{topic}-value"


class DerivedCodec:
    """Encode and decode derived records in the Confluent wire format.

    Schema ids come from ``resolver`` (``ConfluentSchemaResolver`` on the schema registry, or
    ``InMemorySchemaResolver`` in tests), registered under ``<topic>-value``.
    """

    def __init__(self, resolver: SchemaIdResolver) -> None:
        self.resolver = resolver
        self._ids: dict[tuple[str, type[Any]], int] = {}
        self._readers: dict[int, tuple[type[Any], Any, Any]] = {}

    def schema_id(self, topic: str, record_type: type[Any]) -> int:
        """Register (or look up, cached) the schema of ``record_type`` under ``topic``'s subject."""
        cached = self._ids.get((topic, record_type))
        if cached is None:
            cached = self.resolver.id_for(subject_for(topic), schema_str(record_type))
            self._ids[(topic, record_type)] = cached
        return cached

    def encode(self, topic: str, record: DerivedRecord) -> bytes:
        """The record value for ``topic``: magic byte, schema id, Avro binary."""
        record_type = type(record)
        buffer = io.BytesIO()
        buffer.write(WIRE_HEADER.pack(MAGIC_BYTE, self.schema_id(topic, record_type)))
        fastavro.schemaless_writer(buffer, _parsed(record_type), record.to_avro())
        return buffer.getvalue()

    def decode(self, value: bytes) -> TelemetryBucket | WindowStats | FrameBatch:
        """Decode any derived record value (schema resolution when the writer schema differs)."""
        if len(value) < WIRE_HEADER.size:
            raise DerivedRecordError("value too short for the Confluent wire format")
        magic, schema_id = WIRE_HEADER.unpack_from(value)
        if magic != MAGIC_BYTE:
            raise DerivedRecordError(f"not the Confluent wire format (magic byte {magic})")
        record_type, writer, reader = self._reader(schema_id)
        datum = fastavro.schemaless_reader(
            io.BytesIO(memoryview(value)[WIRE_HEADER.size:]), writer, reader
        )
        result: TelemetryBucket | WindowStats | FrameBatch = record_type.from_avro(datum)
        return result

    def decode_as(self, value: bytes, record_type: type[R]) -> R:
        """Decode and check the record type."""
        record = self.decode(value)
        if not isinstance(record, record_type):
            raise DerivedRecordError(f"expected {record_type.__name__}, got {type(record).__name__}")
        return record

    def _reader(self, schema_id: int) -> tuple[type[Any], Any, Any]:
        cached = self._readers.get(schema_id)
        if cached is not None:
            return cached
        try:
            writer = self.resolver.schema_for(schema_id)
        except LookupError:
            raise DerivedRecordError(f"schema id {schema_id} is not in the registry") from None
        name = writer.get("name", "") if isinstance(writer, dict) else ""
        record_type = RECORD_TYPES.get(name)
        if record_type is None:
            raise DerivedRecordError(f"schema id {schema_id} ({name!r}) is not a derived record")
        ours = _parsed(record_type)
        same = fastavro.schema.to_parsing_canonical_form(writer) == \
            fastavro.schema.to_parsing_canonical_form(ours)
        entry = (record_type, ours if same else writer, None if same else ours)
        self._readers[schema_id] = entry
        return entry


def record_types() -> Sequence[type[Any]]:
    """The derived record types, in topic order (telemetry, stats, frames)."""
    return (TelemetryBucket, WindowStats, FrameBatch)
