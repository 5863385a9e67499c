"""Export a recorded session to a file: MCAP (opens in Foxglove) or JSON Lines.

**MCAP**: one channel per data type (``/time_series``, ``/images`` ...; message encoding
``json``) with a JSON Schema (encoding ``jsonschema``) generated from the data type's Avro schema;
zstd-compressed chunks, message and chunk indexes, statistics and a ``robostream`` metadata
record. A message is the envelope as a robot sends it in a JSON frame: ``timestamp`` in seconds
since the epoch (UTC), bytes as base64, NaN as ``null``. Its log time is the envelope timestamp,
its publish time the Kafka (ingest) timestamp, its sequence the envelope ``seq`` (mod 2^32).
Camera frames held inline as JPEG, PNG or WebP are also written as ``foxglove.CompressedImage``
on ``/images/<camera_id>/<kind>``, so Foxglove's Image panel shows them.

**JSONL**: one envelope per line, in the same JSON frame form (a line can be sent to the gateway
as it is).

Records come in recorded-time order (see :mod:`robostream.replay.reader`); the file is written
next to the target and renamed into place when complete.
"""

from __future__ import annotations

import base64
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
from robostream.replay.progress import NoProgress, ProgressReporter
from robostream.replay.reader import SessionQuery, SessionReader, SessionRecord
from robostream.schemas import DataType, Envelope, SchemaIdResolver, encode_frame, load_schema
from robostream.schemas.catalog import NAMESPACE

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CHUNK_BYTES = 1024 * 1024
#: Formats Foxglove's CompressedImage understands.
FOXGLOVE_IMAGE_FORMATS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "webp": "webp",
                          "image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp"}

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

COMPRESSED_IMAGE_SCHEMA: dict[str, Any] = {
    "$schema": JSON_SCHEMA_DIALECT,
    "title": "foxglove.CompressedImage",
    "description": "A compressed image",
    "type": "object",
    "properties": {
        "timestamp": {"type": "object", "title": "time", "description": "Timestamp of image",
                      "properties": {"sec": {"type": "integer", "minimum": 0},
                                     "nsec": {"type": "integer", "minimum": 0, "maximum": 999999999}}},
        "frame_id": {"type": "string", "description": "Frame of reference for the image (the camera id)"},
        "data": {"type": "string", "contentEncoding": "base64", "description": "Compressed image data"},
        "format": {"type": "string", "description": "Image format: jpeg, png, webp"},
    },
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


def image_topic(camera_id: str, kind: str) -> str:
    """The CompressedImage channel of a camera: ``/images/front/rgb``."""
    return f"/images/{camera_id}/{kind}"


def compressed_image(envelope: Envelope) -> tuple[str, dict[str, Any]] | None:
    """``(channel, foxglove.CompressedImage)`` of an inline JPEG/PNG/WebP frame, else ``None``."""
    if envelope.data_type is not DataType.IMAGES:
        return None
    payload = envelope.payload
    content = payload["blob"]["content"]
    image_format = FOXGLOVE_IMAGE_FORMATS.get(str(payload["blob"]["format"]).lower())
    if image_format is None or not isinstance(content, bytes | bytearray):
        return None
    seconds, micros = divmod(envelope.timestamp_us, 1_000_000)
    message = {"timestamp": {"sec": seconds, "nsec": micros * 1000}, "frame_id": payload["camera_id"],
               "data": base64.b64encode(content).decode("ascii"), "format": image_format}
    return image_topic(payload["camera_id"], str(payload["kind"])), message


class McapSessionWriter:
    """Writes session records to an MCAP stream: a schema and a channel per data type."""

    def __init__(self, stream: IO[bytes], query: SessionQuery, *, foxglove_images: bool = True) -> None:
        self._writer = Writer(stream, chunk_size=CHUNK_BYTES, compression=CompressionType.ZSTD,
                              index_types=IndexType.ALL)
        self._writer.start(profile="", library=f"robostream {__version__}")
        self._query = query
        self._foxglove_images = foxglove_images
        self._channels: dict[str, int] = {}
        self._image_schema: int | None = None

    def _channel(self, data_type: DataType) -> int:
        topic = channel_topic(data_type)
        if topic not in self._channels:
            schema = envelope_json_schema(data_type)
            schema_id = self._writer.register_schema(name=schema["title"], encoding="jsonschema",
                                                     data=orjson.dumps(schema))
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="json", schema_id=schema_id,
                metadata={"robot_id": self._query.robot_id, "session_id": self._query.session_id,
                          "data_type": data_type.value})
        return self._channels[topic]

    def _image_channel(self, topic: str) -> int:
        if self._image_schema is None:
            self._image_schema = self._writer.register_schema(
                name="foxglove.CompressedImage", encoding="jsonschema",
                data=orjson.dumps(COMPRESSED_IMAGE_SCHEMA))
        if topic not in self._channels:
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="json", schema_id=self._image_schema,
                metadata={"robot_id": self._query.robot_id, "session_id": self._query.session_id})
        return self._channels[topic]

    def write(self, record: SessionRecord) -> list[str]:
        """Write a record; returns the channels it went to."""
        envelope = record.envelope
        log_time = envelope.timestamp_us * 1000
        publish_time = max(0, record.timestamp_ms) * 1_000_000
        sequence = envelope.seq & 0xFFFFFFFF
        self._writer.add_message(self._channel(envelope.data_type), log_time,
                                 encode_frame(envelope, "json"), publish_time, sequence)
        written = [channel_topic(envelope.data_type)]
        image = compressed_image(envelope) if self._foxglove_images else None
        if image is not None:
            topic, message = image
            self._writer.add_message(self._image_channel(topic), log_time, orjson.dumps(message),
                                     publish_time, sequence)
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
                   foxglove_images: bool = True) -> ExportReport:
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
                McapSessionWriter(stream, query, foxglove_images=foxglove_images)
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
