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

Every record's Kafka key is ``robot_id/session_id`` (UTF-8), like the raw topics. Timestamps are
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
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

import fastavro
import numpy as np

from robostream.errors import RobostreamError
from robostream.schemas.codec import WIRE_HEADER
from robostream.schemas.resolver import SchemaIdResolver
from robostream.times import HOUR_US as HOUR_US  # re-exported: the derived records' time units
from robostream.times import MINUTE_US as MINUTE_US
from robostream.topics import RESOLUTION_US as RESOLUTION_US
from robostream.topics import StatsResolution

NAMESPACE = "io.robostream.derived"
MAGIC_BYTE = 0
#: Timestamps: microseconds since the Unix epoch, UTC, as plain ``long`` (no logical type, so
#: readers get integers without a datetime per array element).
_TS = "long"


class DerivedRecordError(RobostreamError, ValueError):
    """A derived record value that is not in the wire format or names an unknown schema."""


# --- telemetry ----------------------------------------------------------------------------------


TELEMETRY_BUCKET_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "TelemetryBucket",
    "namespace": NAMESPACE,
    "doc": (
        "Telemetry points of one robot session within one minute bucket, as named columns: the "
        "points of one or more consecutive time_series records (a processing batch)."
    ),
    "fields": [
        {"name": "robot_id", "type": "string"},
        {"name": "session_id", "type": "string"},
        {"name": "data_type", "type": "string", "default": "time_series",
         "doc": "The source data type (always 'time_series' today)."},
        {"name": "bucket_hour", "type": _TS, "doc": "Start of the hour of every point (UTC)."},
        {"name": "bucket_minute", "type": _TS, "doc": "Start of the minute of every point (UTC)."},
        {"name": "timestamps", "type": {"type": "array", "items": _TS},
         "doc": "Absolute time of each of the n points (n >= 1), in stream order."},
        {"name": "seqs", "type": {"type": "array", "items": "long"},
         "doc": "seq of the source record of each point."},
        {"name": "indexes", "type": {"type": "array", "items": "int"},
         "doc": "Index of each point within its source record: (seq, index) identifies a point."},
        {"name": "values", "type": {"type": "map", "values": {"type": "array", "items": "double"}},
         "doc": "Metric name -> n values (NaN: missing sample or metric absent from the source)."},
        {"name": "joint_names", "type": {"type": "array", "items": "string"}, "default": [],
         "doc": "Names of joints 0..dof-1 (metrics joints.<field>.<index>); empty if none sent."},
        {"name": "units", "type": {"type": "map", "values": "string"}, "default": {},
         "doc": "Unit of free channels, by metric name (channels.<name>)."},
    ],
}


@dataclass(frozen=True, slots=True)
class TelemetryBucket:
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

    @property
    def key(self) -> bytes:
        return f"{self.robot_id}/{self.session_id}".encode()

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

    def to_avro(self) -> dict[str, Any]:
        return {
            "robot_id": self.robot_id, "session_id": self.session_id, "data_type": self.data_type,
            "bucket_hour": self.bucket_hour, "bucket_minute": self.bucket_minute,
            "timestamps": [int(t) for t in self.timestamps], "seqs": [int(s) for s in self.seqs],
            "indexes": [int(i) for i in self.indexes],
            "values": {k: [float(x) for x in v] for k, v in self.values.items()},
            "joint_names": list(self.joint_names), "units": dict(self.units),
        }

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> TelemetryBucket:
        return cls(**datum)


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


METRIC_STATS_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "MetricStats",
    "namespace": NAMESPACE,
    "doc": "Statistics of one metric over one window (NaN samples excluded; count >= 1).",
    "fields": [
        {"name": "metric", "type": "string", "doc": "e.g. pose.position.x, joints.angle.3."},
        {"name": "count", "type": "long"},
        {"name": "min", "type": "double"},
        {"name": "max", "type": "double"},
        {"name": "mean", "type": "double"},
        {"name": "stddev", "type": "double", "doc": "Population standard deviation (ddof=0)."},
        {"name": "last", "type": "double", "doc": "Value of the latest sample in the window."},
        {"name": "last_timestamp", "type": _TS, "doc": "Time of that latest sample."},
        {"name": "unit", "type": ["null", "string"], "default": None,
         "doc": "Unit of the metric (SI symbol), when known."},
    ],
}

WINDOW_STATS_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "WindowStats",
    "namespace": NAMESPACE,
    "doc": "One closed tumbling window [window_start, window_end) of one robot session.",
    "fields": [
        {"name": "robot_id", "type": "string"},
        {"name": "session_id", "type": "string"},
        {"name": "resolution", "type": "string", "doc": "1s, 1m or 1h."},
        {"name": "window_start", "type": _TS},
        {"name": "window_end", "type": _TS, "doc": "Exclusive."},
        {"name": "metrics", "type": {"type": "array", "items": METRIC_STATS_SCHEMA}},
        {"name": "closed_by", "type": "string", "default": "watermark",
         "doc": "watermark (event time passed window_end + lateness) or idle (no data for a while)."},
    ],
}


@dataclass(frozen=True, slots=True)
class MetricStats:
    """count, min, max, mean, stddev (population) and last of one metric in one window."""

    metric: str
    count: int
    min: float
    max: float
    mean: float
    stddev: float
    last: float
    last_timestamp: int
    unit: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "count": self.count, "min": self.min, "max": self.max,
            "mean": self.mean, "stddev": self.stddev, "last": self.last,
            "last_timestamp": self.last_timestamp, "unit": self.unit,
        }


@dataclass(frozen=True, slots=True)
class MetricAggregate:
    """One metric of one window, flat: a Redis ``stats:`` key or an ``aggregations`` document."""

    robot_id: str
    session_id: str
    metric: str
    resolution: str
    window_start: int
    window_end: int
    count: int
    min: float
    max: float
    mean: float
    stddev: float
    last: float
    last_timestamp: int
    unit: str | None = None

    @property
    def redis_key(self) -> str:
        """``stats:{robot}:{session}:{metric}:{resolution}`` (design.md)."""
        return f"stats:{self.robot_id}:{self.session_id}:{self.metric}:{self.resolution}"


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One closed window of one robot session with the statistics of every metric seen in it."""

    SCHEMA: ClassVar[dict[str, Any]] = WINDOW_STATS_SCHEMA

    robot_id: str
    session_id: str
    resolution: StatsResolution
    window_start: int
    window_end: int
    metrics: list[MetricStats]
    closed_by: str = "watermark"

    @property
    def key(self) -> bytes:
        return f"{self.robot_id}/{self.session_id}".encode()

    def aggregates(self) -> Iterator[MetricAggregate]:
        """One flat :class:`MetricAggregate` per metric."""
        for m in self.metrics:
            yield MetricAggregate(
                self.robot_id, self.session_id, m.metric, self.resolution.value,
                self.window_start, self.window_end, m.count, m.min, m.max, m.mean, m.stddev,
                m.last, m.last_timestamp, m.unit,
            )

    def to_avro(self) -> dict[str, Any]:
        return {
            "robot_id": self.robot_id, "session_id": self.session_id,
            "resolution": self.resolution.value, "window_start": self.window_start,
            "window_end": self.window_end, "metrics": [m.to_avro() for m in self.metrics],
            "closed_by": self.closed_by,
        }

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> WindowStats:
        return cls(
            robot_id=datum["robot_id"], session_id=datum["session_id"],
            resolution=StatsResolution(datum["resolution"]),
            window_start=datum["window_start"], window_end=datum["window_end"],
            metrics=[MetricStats(**m) for m in datum["metrics"]],
            closed_by=datum["closed_by"],
        )


# --- frames -------------------------------------------------------------------------------------


class FrameKind(StrEnum):
    RGB = "rgb"
    DEPTH = "depth"
    POINTCLOUD = "pointcloud"


class TierName(StrEnum):
    """Resolution tiers: the source resolution, a 640x360 preview and a 120x68 thumbnail."""

    ORIGINAL = "original"
    PREVIEW = "preview"
    THUMBNAIL = "thumbnail"


STORED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "StoredObject",
    "namespace": NAMESPACE,
    "doc": "An object for the S3 sink to write at key (in the configured bucket), bytes inline.",
    "fields": [
        {"name": "key", "type": "string"},
        {"name": "content_type", "type": "string"},
        {"name": "size_bytes", "type": "long"},
        {"name": "sha256", "type": "string"},
        {"name": "content", "type": "bytes"},
    ],
}

FRAME_TIER_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "FrameTier",
    "namespace": NAMESPACE,
    "fields": [
        {"name": "tier", "type": "string", "doc": "original, preview or thumbnail."},
        {"name": "key", "type": "string", "doc": "S3 key of the object holding this frame."},
        {"name": "format", "type": "string", "doc": "mp4 (H.264), png, jpeg or draco."},
        {"name": "compression", "type": "string", "doc": "e.g. 'libx264 crf=23 preset=veryfast gop=30'."},
        {"name": "width", "type": "int"},
        {"name": "height", "type": "int"},
        {"name": "size_bytes", "type": "long",
         "doc": "Size of the object at key (the whole segment for H.264)."},
        {"name": "segment_index", "type": ["null", "int"], "default": None,
         "doc": "H.264 only: index of this frame in the segment (decode order)."},
        {"name": "segment_frames", "type": ["null", "int"], "default": None,
         "doc": "H.264 only: number of frames in the segment."},
    ],
}

FRAME_META_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "FrameMeta",
    "namespace": NAMESPACE,
    "doc": "One source frame after compaction: a frames_metadata document.",
    "fields": [
        {"name": "frame_id", "type": "string", "doc": "{camera}-{kind}-{timestamp µs}, unique per session."},
        {"name": "seq", "type": "long", "doc": "seq of the source images record."},
        {"name": "timestamp", "type": _TS},
        {"name": "bucket_hour", "type": _TS},
        {"name": "source_format", "type": "string"},
        {"name": "source_size_bytes", "type": "long"},
        {"name": "width", "type": "int"},
        {"name": "height", "type": "int"},
        {"name": "compressed_size_bytes", "type": "long",
         "doc": "This frame's share of the original tier (segment size / frames for H.264)."},
        {"name": "tiers", "type": {"type": "array", "items": FRAME_TIER_SCHEMA}},
        {"name": "thumbnail", "type": ["null", "bytes"], "default": None,
         "doc": "The thumbnail tier's bytes (JPEG 120x68) for GridFS; null for point clouds."},
    ],
}

BUNDLE_PART_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "BundlePart",
    "namespace": NAMESPACE,
    "doc": (
        "A piece of the hourly bundle raw/{robot}/{session}/compressed/{hour}_bundle.tar.gz: a "
        "gzip member holding whole tar members. The bundle is the concatenation of its parts in "
        "part order (concatenated gzip members are one valid gzip stream); the part with "
        "last=true holds the tar end-of-archive blocks and sorts after every other part."
    ),
    "fields": [
        {"name": "key", "type": "string", "doc": "S3 key of the bundle."},
        {"name": "part", "type": "string",
         "doc": "Sort key, unique in the bundle: '{first frame µs:020d}-{camera}-{kind}'."},
        {"name": "last", "type": "boolean", "default": False},
        {"name": "members", "type": {"type": "array", "items": "string"},
         "doc": "Names of the tar members in this part."},
        {"name": "content", "type": "bytes"},
    ],
}

FRAME_BATCH_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "FrameBatch",
    "namespace": NAMESPACE,
    "doc": "Output of one compaction flush of one camera: an H.264 segment, or depth/point-cloud frames.",
    "fields": [
        {"name": "robot_id", "type": "string"},
        {"name": "session_id", "type": "string"},
        {"name": "camera_id", "type": "string"},
        {"name": "kind", "type": "string", "doc": "rgb, depth or pointcloud."},
        {"name": "objects", "type": {"type": "array", "items": STORED_OBJECT_SCHEMA},
         "doc": "Encoded objects for the S3 sink."},
        {"name": "frames", "type": {"type": "array", "items": FRAME_META_SCHEMA}},
        {"name": "bundle_parts", "type": {"type": "array", "items": BUNDLE_PART_SCHEMA}, "default": [],
         "doc": "Pieces of hourly bundles (this flush's objects; the last part of a closed hour)."},
    ],
}


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object the S3 sink writes: key (in ``s3.bucket``), content type, size, SHA-256, bytes."""

    key: str
    content_type: str
    size_bytes: int
    sha256: str
    content: bytes

    def to_avro(self) -> dict[str, Any]:
        return {"key": self.key, "content_type": self.content_type, "size_bytes": self.size_bytes,
                "sha256": self.sha256, "content": self.content}


@dataclass(frozen=True, slots=True)
class FrameTier:
    """Where one tier of a frame lives and how it was encoded."""

    tier: str
    key: str
    format: str
    compression: str
    width: int
    height: int
    size_bytes: int
    segment_index: int | None = None
    segment_frames: int | None = None

    def to_avro(self) -> dict[str, Any]:
        return {"tier": self.tier, "key": self.key, "format": self.format,
                "compression": self.compression, "width": self.width, "height": self.height,
                "size_bytes": self.size_bytes, "segment_index": self.segment_index,
                "segment_frames": self.segment_frames}


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """One source frame after compaction (a ``frames_metadata`` document)."""

    frame_id: str
    seq: int
    timestamp: int
    bucket_hour: int
    source_format: str
    source_size_bytes: int
    width: int
    height: int
    compressed_size_bytes: int
    tiers: list[FrameTier]
    thumbnail: bytes | None = None

    @property
    def compression_ratio(self) -> float:
        """Saved fraction of the source size (0.7 = 70 % smaller), on the original tier."""
        if not self.source_size_bytes:
            return 0.0
        return 1.0 - self.compressed_size_bytes / self.source_size_bytes

    def tier(self, name: TierName | str) -> FrameTier | None:
        return next((t for t in self.tiers if t.tier == name), None)

    def to_avro(self) -> dict[str, Any]:
        return {"frame_id": self.frame_id, "seq": self.seq, "timestamp": self.timestamp,
                "bucket_hour": self.bucket_hour, "source_format": self.source_format,
                "source_size_bytes": self.source_size_bytes, "width": self.width,
                "height": self.height, "compressed_size_bytes": self.compressed_size_bytes,
                "tiers": [t.to_avro() for t in self.tiers], "thumbnail": self.thumbnail}

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> FrameMeta:
        return cls(**{**datum, "tiers": [FrameTier(**t) for t in datum["tiers"]]})


@dataclass(frozen=True, slots=True)
class BundlePart:
    """A gzip member of whole tar members of the hourly bundle at ``key``."""

    key: str
    part: str
    last: bool
    members: list[str]
    content: bytes

    def to_avro(self) -> dict[str, Any]:
        return {"key": self.key, "part": self.part, "last": self.last,
                "members": self.members, "content": self.content}


@dataclass(frozen=True, slots=True)
class FrameBatch:
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

    @property
    def key(self) -> bytes:
        return f"{self.robot_id}/{self.session_id}".encode()

    def to_avro(self) -> dict[str, Any]:
        return {
            "robot_id": self.robot_id, "session_id": self.session_id,
            "camera_id": self.camera_id, "kind": self.kind.value,
            "objects": [o.to_avro() for o in self.objects],
            "frames": [f.to_avro() for f in self.frames],
            "bundle_parts": [p.to_avro() for p in self.bundle_parts],
        }

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> FrameBatch:
        return cls(
            robot_id=datum["robot_id"], session_id=datum["session_id"],
            camera_id=datum["camera_id"], kind=FrameKind(datum["kind"]),
            objects=[StoredObject(**o) for o in datum["objects"]],
            frames=[FrameMeta.from_avro(f) for f in datum["frames"]],
            bundle_parts=[BundlePart(**p) for p in datum["bundle_parts"]],
        )


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
