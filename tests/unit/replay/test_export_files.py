"""MCAP and JSONL writers and the JSON Schemas generated from the Avro schemas (no servers)."""

from __future__ import annotations

import io
import math
from typing import Any

import orjson
import pytest
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory

from robostream.replay.export import (
    JsonlSessionWriter,
    McapSessionWriter,
    avro_to_json_schema,
    envelope_json_schema,
)
from robostream.replay.reader import SessionQuery, SessionRecord
from robostream.schemas import (
    DataType,
    Envelope,
    InMemorySchemaResolver,
    build_envelope,
    decode_frame,
    decode_record,
    encode_record,
    load_schema,
)
from robostream.schemas.examples import example_payload

RESOLVER = InMemorySchemaResolver()
QUERY = SessionQuery("robot_001", "s1")
T0_US = 1_718_000_000_000_000


def record(data_type: DataType, seq: int, ts_us: int, payload: dict[str, Any] | None = None) -> SessionRecord:
    """A record as the reader yields it: encoded and decoded like on the real path."""
    envelope = build_envelope(data_type, payload or example_payload(data_type), robot_id="robot_001",
                              session_id="s1", seq=seq, timestamp=ts_us / 1_000_000)
    kafka = encode_record(envelope, RESOLVER)
    decoded = decode_record(kafka.value, RESOLVER, key=kafka.key)
    return SessionRecord(decoded, f"robot.{data_type}", 0, seq, ts_us // 1000 + 50, kafka.key,
                         kafka.value, kafka.headers)


def conforms(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The places where ``value`` breaks ``schema`` (the JSON Schema subset the converter emits)."""
    if "anyOf" in schema:
        if any(not conforms(value, branch, path) for branch in schema["anyOf"]):
            return []
        return [f"{path}: no branch of anyOf fits {value!r:.60}"]
    kinds = schema.get("type")
    if kinds is None:
        return []
    kinds = kinds if isinstance(kinds, list) else [kinds]
    checks = {"null": value is None, "boolean": isinstance(value, bool),
              "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, int | float) and not isinstance(value, bool),
              "string": isinstance(value, str), "array": isinstance(value, list),
              "object": isinstance(value, dict)}
    if not any(checks[k] for k in kinds):
        return [f"{path}: {type(value).__name__} is not {kinds}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in enum")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += conforms(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [f"{path}: missing {name}" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            inner = props.get(name, schema.get("additionalProperties"))
            if inner is None:
                problems.append(f"{path}: unexpected {name}")
            else:
                problems += conforms(item, inner, f"{path}.{name}")
    return problems


@pytest.mark.parametrize("data_type", list(DataType))
def test_every_exported_message_fits_its_generated_json_schema(data_type: DataType) -> None:
    schema = envelope_json_schema(data_type)
    assert schema["type"] == "object" and schema["title"].startswith("io.robostream.")
    rec = record(data_type, 7, T0_US)
    message = orjson.loads(io.BytesIO(_jsonl([rec])).readline())
    assert conforms(message, schema) == []


def test_nan_samples_and_bytes_are_json_friendly() -> None:
    payload = example_payload(DataType.TIME_SERIES)
    payload["pose"]["position"]["x"][0] = math.nan
    rec = record(DataType.TIME_SERIES, 1, T0_US, payload)
    message = orjson.loads(_jsonl([rec]))
    assert message["payload"]["pose"]["position"]["x"][0] is None
    assert conforms(message, envelope_json_schema(DataType.TIME_SERIES)) == []
    image = orjson.loads(_jsonl([record(DataType.IMAGES, 2, T0_US)]))
    assert isinstance(image["payload"]["blob"]["content"], str)  # base64


def test_named_avro_types_are_inlined_where_referenced() -> None:
    schema = avro_to_json_schema(load_schema(DataType.TIME_SERIES))
    text = orjson.dumps(schema).decode()
    assert "$ref" not in text and "Vector3Series" in text


def _jsonl(records: list[SessionRecord]) -> bytes:
    out = io.BytesIO()
    writer = JsonlSessionWriter(out)
    for rec in records:
        writer.write(rec)
    writer.finish({})
    return out.getvalue()


def test_jsonl_lines_are_robot_json_frames_of_the_same_envelopes() -> None:
    records = [record(DataType.TIME_SERIES, i, T0_US + i * 100_000) for i in range(3)]
    records.append(record(DataType.IMAGES, 3, T0_US + 300_000))
    lines = _jsonl(records).splitlines()
    assert len(lines) == 4
    decoded: list[Envelope] = [decode_frame(line.decode()).envelopes[0] for line in lines]
    assert [(e.data_type, e.seq, e.timestamp_us) for e in decoded] == [
        (r.envelope.data_type, r.envelope.seq, r.envelope.timestamp_us) for r in records]
    assert decoded[3].payload["blob"]["content"] == records[3].envelope.payload["blob"]["content"]


FOXGLOVE_TOPICS = {"/robot_001/pose": "foxglove.PoseInFrame", "/robot_001/tf": "foxglove.FrameTransform",
                   "/robot_001/joints": "foxglove.JointStates", "/robot_001/log": "foxglove.Log",
                   "/robot_001/images/front/rgb": "foxglove.CompressedImage"}
#: The other telemetry streams: JSON with a JSON Schema each
STREAM_TOPICS = {"/robot_001/imu": "robostream.Imu", "/robot_001/force_torque": "robostream.ForceTorque",
                 "/robot_001/metrics": "robostream.Metrics", "/robot_001/channels": "robostream.Channels"}


def test_mcap_has_a_schema_and_channel_per_data_type_zstd_chunks_and_an_index() -> None:
    records = [record(DataType.TIME_SERIES, i, T0_US + i * 100_000) for i in range(20)]
    records += [record(DataType.LOG, 20 + i, T0_US + 50_000 + i * 500_000) for i in range(4)]
    records.append(record(DataType.IMAGES, 30, T0_US + 1_000_000))
    out = io.BytesIO()
    writer = McapSessionWriter(out, QUERY)
    for rec in records:
        writer.write(rec)
    writer.finish({"robot_id": "robot_001", "session_id": "s1"})

    out.seek(0)
    reader = make_reader(out, decoder_factories=[DecoderFactory()])
    summary = reader.get_summary()
    assert summary is not None and summary.statistics is not None
    channels = {c.topic: c for c in summary.channels.values()}
    assert set(channels) == {"/time_series", "/log", "/images", *FOXGLOVE_TOPICS, *STREAM_TOPICS}
    counts = {channels_topic: summary.statistics.channel_message_counts[c.id]
              for channels_topic, c in channels.items()}
    samples = 20 * 10  # the example record holds 10 samples of every stream
    assert counts == {"/time_series": 20, "/log": 4, "/images": 1, "/robot_001/pose": samples,
                      "/robot_001/tf": samples, "/robot_001/joints": samples, "/robot_001/log": 4,
                      "/robot_001/images/front/rgb": 1, **dict.fromkeys(STREAM_TOPICS, samples)}
    assert summary.statistics.message_start_time == T0_US * 1000
    assert summary.statistics.message_end_time == (T0_US + 1_900_000 + 90_000) * 1000  # its last sample
    schemas = {s.id: s for s in summary.schemas.values()}
    assert {t: schemas[channels[t].schema_id].name for t in FOXGLOVE_TOPICS} == FOXGLOVE_TOPICS
    assert {t: schemas[channels[t].schema_id].name for t in STREAM_TOPICS} == STREAM_TOPICS
    assert {schemas[channels[t].schema_id].name for t in ("/time_series", "/log", "/images")} == {
        "io.robostream.TimeSeries", "io.robostream.Log", "io.robostream.Image"}
    assert {schemas[c.schema_id].encoding for c in channels.values()} == {"jsonschema", "protobuf"}
    assert {c.message_encoding for c in channels.values() if c.topic in FOXGLOVE_TOPICS} == {"protobuf"}
    assert {(c.message_encoding, schemas[c.schema_id].encoding) for c in channels.values()
            if c.topic in STREAM_TOPICS} == {("json", "jsonschema")}
    assert summary.chunk_indexes and {ci.compression for ci in summary.chunk_indexes} == {"zstd"}
    assert all(ci.message_index_offsets for ci in summary.chunk_indexes)
    metadata = list(reader.iter_metadata())
    assert metadata[0].name == "robostream" and metadata[0].metadata["session_id"] == "s1"

    (_, _, _, image), = reader.iter_decoded_messages(topics=["/robot_001/images/front/rgb"])
    sent = records[-1].envelope.payload
    assert image.format == "jpeg" and image.frame_id == "front" and image.data == sent["blob"]["content"]
    assert (image.timestamp.seconds, image.timestamp.nanos) == ((T0_US + 1_000_000) // 1_000_000, 0)
    _, _, message, pose = next(iter(reader.iter_decoded_messages(topics=["/robot_001/pose"],
                                                                 log_time_order=True)))
    position = records[0].envelope.payload["pose"]["position"]
    assert pose.frame_id == "world" and message.log_time == T0_US * 1000
    assert (pose.pose.position.x, pose.pose.position.y) == (position["x"][0], position["y"][0])
    assert message.publish_time == (T0_US // 1000 + 50) * 1_000_000 and message.sequence == 0
    _, _, _, joints = next(iter(reader.iter_decoded_messages(topics=["/robot_001/joints"],
                                                             log_time_order=True)))
    angles = records[0].envelope.payload["joints"]["angle"][0]
    assert [j.name for j in joints.joints] == [f"joint_{j}" for j in range(7)]
    assert [j.position for j in joints.joints] == angles
    _, _, _, log = next(iter(reader.iter_decoded_messages(topics=["/robot_001/log"])))
    assert log.message == "joint_3 torque near limit" and log.name == "arm.controller" and log.level == 3
    _, channel, message = next(iter(reader.iter_messages(topics=["/robot_001/force_torque"],
                                                          log_time_order=True)))
    force_torque = orjson.loads(message.data)
    sent_ft = records[0].envelope.payload["force_torque"]
    assert force_torque == {"timestamp": {"sec": T0_US // 1_000_000, "nsec": 0},
                            "force": {a: sent_ft["force"][a][0] for a in "xyz"},
                            "torque": {a: sent_ft["torque"][a][0] for a in "xyz"}}
    assert not conforms(force_torque, orjson.loads(schemas[channel.schema_id].data))
    _, channel, message = next(iter(reader.iter_messages(topics=["/robot_001/channels"])))
    assert set(orjson.loads(message.data)) == {"timestamp", "gripper_width", "battery_voltage"}
    first = next(iter(reader.iter_messages(topics=["/time_series"], log_time_order=True)))
    assert first[2].log_time == T0_US * 1000 and first[2].publish_time == (T0_US // 1000 + 50) * 1_000_000
    assert orjson.loads(first[2].data)["seq"] == 0


def test_claim_checked_frames_get_no_compressed_image() -> None:
    payload = example_payload(DataType.IMAGES)
    ref = {"bucket": "robostream", "key": "raw/robot_001/s1/frames/1_rgb.jpg", "size": 4096,
           "sha256": "a" * 64}
    payload["blob"] = {"format": "jpeg", "size_bytes": 4096, "sha256": "a" * 64, "content": ref}
    out = io.BytesIO()
    writer = McapSessionWriter(out, QUERY)
    assert writer.write(record(DataType.IMAGES, 1, T0_US, payload)) == ["/images"]
    assert McapSessionWriter(io.BytesIO(), QUERY, foxglove=False).write(
        record(DataType.IMAGES, 2, T0_US)) == ["/images"]
