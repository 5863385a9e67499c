"""Export a recorded session to a file: MCAP (opens in Foxglove) or JSON Lines.

**MCAP**: one channel per data type (``/time_series``, ``/images`` ...; message encoding
``json``) with a JSON Schema (encoding ``jsonschema``) generated from the data type's Avro schema;
zstd-compressed chunks, message and chunk indexes, statistics and a ``robostream`` metadata
record. A message is the envelope as a robot sends it in a JSON frame: ``timestamp`` in seconds
since the epoch (UTC), bytes as base64, NaN as ``null``. Its log time is the envelope timestamp,
its publish time the Kafka (ingest) timestamp, its sequence the envelope ``seq`` (mod 2^32).

**Foxglove channels** (message encoding ``protobuf``, Foxglove's well-known schemas): the same
topics and messages as the live ``robostream foxglove`` service (:mod:`robostream.foxglove.messages`),
so a recording opens with the panels of the live view: ``/<robot>/pose`` (PoseInFrame), ``/<robot>/tf``
(FrameTransform), ``/<robot>/joints`` (JointStates) per telemetry sample, inline JPEG/PNG/WebP frames
on ``/<robot>/images/<camera>/<kind>`` (CompressedImage), inline point clouds on
``/<robot>/pointcloud/<camera>`` (PointCloud) and logs on ``/<robot>/log`` (Log); the other
telemetry streams per sample in ``json`` with a JSON Schema each: ``/<robot>/imu``,
``/<robot>/force_torque``, ``/<robot>/metrics`` and ``/<robot>/channels``.

**JSONL**: one envelope per line, in the same JSON frame form (a line can be sent to the gateway
as it is).

Records come in recorded-time order (see :mod:`robostream.replay.reader`); the file is written
next to the target and renamed into place when complete.
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson
from mcap.writer import CompressionType, IndexType, Writer

from robostream import __version__
from robostream.config import Settings
from robostream.foxglove import messages as foxglove_messages
from robostream.replay.progress import NoProgress, ProgressReporter
from robostream.replay.reader import SessionQuery, SessionReader, SessionRecord
from robostream.schemas import DataType, SchemaIdResolver, encode_frame, load_schema
from robostream.schemas.catalog import NAMESPACE

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CHUNK_BYTES = 1024 * 1024

_PRIMITIVES: dict[str, dict[str, Any]] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": ["number", "null"], "description": "NaN is null"},
    "double": {"type": ["number", "null"], "description": "NaN is null"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    "string": {"type": "string"},
}


class ExportFormat(StrEnum):
    MCAP = "mcap"
    JSONL = "jsonl"


# --- Avro -> JSON Schema ------------------------------------------------------------------------


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name else f"{namespace}.{name}"


class _JsonSchemaBuilder:
    """Converts an Avro schema to JSON Schema, inlining named types where they are referenced."""

    def __init__(self) -> None:
        self.named: dict[str, dict[str, Any]] = {}
        self.building: set[str] = set()

    def convert(self, avro: Any, namespace: str) -> dict[str, Any]:
        if isinstance(avro, str):
            return self._reference(avro, namespace)
        if isinstance(avro, list):
            return {"anyOf": [self.convert(branch, namespace) for branch in avro]}
        kind = avro["type"]
        if isinstance(kind, dict | list):
            return self.convert(kind, namespace)
        if kind in ("record", "enum", "fixed"):
            return self._named(avro, namespace)
        if kind == "array":
            return {"type": "array", "items": self.convert(avro["items"], namespace)}
        if kind == "map":
            return {"type": "object", "additionalProperties": self.convert(avro["values"], namespace)}
        converted = dict(_PRIMITIVES[kind])
        if avro.get("logicalType") == "timestamp-micros":
            converted["description"] = "microseconds since the Unix epoch (UTC)"
        return converted

    def _reference(self, name: str, namespace: str) -> dict[str, Any]:
        if name in _PRIMITIVES:
            return dict(_PRIMITIVES[name])
        full = _full_name(name, namespace)
        if full in self.building:
            return {"description": f"{full} (recursive)"}
        return copy.deepcopy(self.named[full])

    def _named(self, avro: dict[str, Any], namespace: str) -> dict[str, Any]:
        full = _full_name(avro["name"], avro.get("namespace", namespace))
        inner_namespace = full.rsplit(".", 1)[0]
        converted: dict[str, Any]
        if avro["type"] == "enum":
            converted = {"type": "string", "enum": list(avro["symbols"])}
        elif avro["type"] == "fixed":
            converted = {"type": "string", "contentEncoding": "base64"}
        else:
            self.building.add(full)
            properties = {}
            for item in avro["fields"]:
                prop = self.convert(item["type"], inner_namespace)
                if item.get("doc"):
                    prop = {**prop, "description": item["doc"]}
                properties[item["name"]] = prop
            self.building.discard(full)
            converted = {"type": "object", "title": full, "properties": properties,
                         "required": [item["name"] for item in avro["fields"]]}
        if avro.get("doc"):
            converted.setdefault("description", avro["doc"])
        self.named[full] = converted
        return copy.deepcopy(converted)


def avro_to_json_schema(avro: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema (2020-12) of the JSON a record of ``avro`` is written as."""
    converted = _JsonSchemaBuilder().convert(avro, NAMESPACE)
    return {"$schema": JSON_SCHEMA_DIALECT, **converted}


def envelope_json_schema(data_type: DataType) -> dict[str, Any]:
    """The JSON Schema of a data type's envelope in its JSON frame form (timestamp in seconds)."""
    schema = avro_to_json_schema(load_schema(data_type))
    schema["properties"]["timestamp"] = {
        "type": "number", "description": "when the data was produced on the robot: seconds since "
                                         "the Unix epoch (UTC)"}
    return schema


# --- writers ------------------------------------------------------------------------------------


def channel_topic(data_type: DataType | str) -> str:
    """The MCAP channel of a data type: ``/time_series``."""
    return f"/{DataType(data_type).value}"


class McapSessionWriter:
    """Writes session records to an MCAP stream: a schema and a channel per data type, plus the
    Foxglove channels of :mod:`robostream.foxglove.messages` (``foxglove=False``: left out)."""

    def __init__(self, stream: IO[bytes], query: SessionQuery, *, foxglove: bool = True) -> None:
        self._writer = Writer(stream, chunk_size=CHUNK_BYTES, compression=CompressionType.ZSTD,
                              index_types=IndexType.ALL)
        self._writer.start(profile="", library=f"robostream {__version__}")
        self._query = query
        self._foxglove = foxglove
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}

    def _metadata(self, **extra: str) -> dict[str, str]:
        return {"robot_id": self._query.robot_id, "session_id": self._query.session_id, **extra}

    def _channel(self, data_type: DataType) -> int:
        topic = channel_topic(data_type)
        if topic not in self._channels:
            schema = envelope_json_schema(data_type)
            schema_id = self._writer.register_schema(name=schema["title"], encoding="jsonschema",
                                                     data=orjson.dumps(schema))
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="json", schema_id=schema_id,
                metadata=self._metadata(data_type=data_type.value))
        return self._channels[topic]

    def _foxglove_channel(self, topic: str, message: foxglove_messages.Message) -> int:
        if topic not in self._channels:
            schema = foxglove_messages.schema_of(message)
            if schema.name not in self._schemas:
                self._schemas[schema.name] = self._writer.register_schema(
                    name=schema.name, encoding=schema.encoding, data=schema.data)
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding=foxglove_messages.encoding_of(message),
                schema_id=self._schemas[schema.name], metadata=self._metadata())
        return self._channels[topic]

    def write(self, record: SessionRecord) -> list[str]:
        """Write a record; returns the channels it went to (one entry per message)."""
        envelope = record.envelope
        publish_time = max(0, record.timestamp_ms) * 1_000_000
        sequence = envelope.seq & 0xFFFFFFFF
        self._writer.add_message(self._channel(envelope.data_type), envelope.timestamp_us * 1000,
                                 encode_frame(envelope, "json"), publish_time, sequence)
        written = [channel_topic(envelope.data_type)]
        if self._foxglove:
            for ts_us, topic, message in foxglove_messages.envelope_messages(envelope):
                self._writer.add_message(self._foxglove_channel(topic, message), ts_us * 1000,
                                         message.encode(), publish_time, sequence)
                written.append(topic)
        return written

    def finish(self, metadata: dict[str, str]) -> None:
        self._writer.add_metadata("robostream", metadata)
        self._writer.finish()


class JsonlSessionWriter:
    """Writes one envelope per line in the JSON frame form."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, record: SessionRecord) -> list[str]:
        self._stream.write(encode_frame(record.envelope, "json") + b"\n")
        return [channel_topic(record.envelope.data_type)]

    def finish(self, metadata: dict[str, str]) -> None:
        self._stream.flush()


# --- the export ---------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What an export wrote."""

    path: Path
    format: ExportFormat
    records: int = 0
    per_channel: Counter[str] = field(default_factory=Counter)
    first_timestamp_us: int | None = None
    last_timestamp_us: int | None = None
    skipped: int = 0
    size_bytes: int = 0
    elapsed_s: float = 0.0

    def count(self, record: SessionRecord, channels: list[str]) -> None:
        ts = record.envelope.timestamp_us
        self.records += 1
        self.per_channel.update(channels)
        self.first_timestamp_us = ts if self.first_timestamp_us is None else min(ts, self.first_timestamp_us)
        self.last_timestamp_us = ts if self.last_timestamp_us is None else max(ts, self.last_timestamp_us)


def export_metadata(settings: Settings, query: SessionQuery) -> dict[str, str]:
    """The ``robostream`` metadata record of an MCAP export."""
    return {
        "robot_id": query.robot_id,
        "session_id": query.session_id,
        "data_types": ",".join(dt.value for dt in query.types),
        "from": str(query.start) if query.start is not None else "",
        "to": str(query.end) if query.end is not None else "",
        "kafka_bootstrap": settings.kafka.bootstrap,
        "topic_prefix": settings.topics.prefix,
        "exported_by": f"robostream {__version__}",
    }


def export_session(settings: Settings, query: SessionQuery, output: Path | str, resolver: SchemaIdResolver,
                   *, fmt: ExportFormat | str = ExportFormat.MCAP, progress: ProgressReporter | None = None,
                   foxglove: bool = True) -> ExportReport:
    """Write the session of ``query`` to ``output`` as MCAP or JSONL. Raises
    :class:`~robostream.replay.reader.ReplayError` (the target is left untouched then)."""
    progress = progress or NoProgress()
    fmt = ExportFormat(fmt)
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    report = ExportReport(target, fmt)
    started = time.monotonic()
    try:
        with partial.open("wb") as stream, \
                SessionReader(settings, query, resolver, on_progress=progress.advance) as reader:
            writer: McapSessionWriter | JsonlSessionWriter = (
                McapSessionWriter(stream, query, foxglove=foxglove)
                if fmt is ExportFormat.MCAP else JsonlSessionWriter(stream))
            progress.start(reader.total_offsets, f"export {query.robot_id}/{query.session_id}")
            for record in reader:
                report.count(record, writer.write(record))
                if report.records % 200 == 1:
                    progress.note(f"{report.records:,} records")
            writer.finish(export_metadata(settings, query))
            report.skipped = reader.skipped
        progress.note(f"{report.records:,} records")
        os.replace(partial, target)
    finally:
        progress.stop()
        partial.unlink(missing_ok=True)
    report.size_bytes = target.stat().st_size
    report.elapsed_s = time.monotonic() - started
    return report
