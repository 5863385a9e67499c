"""Schema ids: in memory, and through confluent_kafka's client (its mock registry, no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from robostream.schemas import (
    ConfluentSchemaResolver,
    DataType,
    ErrorCode,
    InMemorySchemaResolver,
    SchemaIdResolver,
    ValidationError,
    build_envelope,
    decode_record,
    decode_value,
    encode_record,
    encode_value,
    load_schema,
    schema_str,
    validate_event,
)
from robostream.schemas.examples import example_payload


def envelope(data_type: str = "time_series", seq: int = 1):  # type: ignore[no-untyped-def]
    return build_envelope(
        data_type,
        example_payload(data_type),
        robot_id="robot_001",
        session_id="s1",
        seq=seq,
        timestamp=1718000000.5,
    )


def test_in_memory_ids_are_stable_and_shared_across_subjects() -> None:
    resolver = InMemorySchemaResolver()
    assert isinstance(resolver, SchemaIdResolver)
    first = resolver.id_for("robot.log-value", schema_str("log"))
    assert resolver.id_for("robot.log-value", schema_str("log")) == first
    assert resolver.id_for("lab.log-value", schema_str("log")) == first
    assert resolver.id_for("robot.csv-value", schema_str("csv")) == first + 1
    assert resolver.subjects() == {
        "robot.log-value": [first],
        "lab.log-value": [first],
        "robot.csv-value": [first + 1],
    }
    with pytest.raises(LookupError):
        resolver.schema_for(99)


def test_record_layout() -> None:
    resolver = InMemorySchemaResolver(first_id=258)
    record = encode_record(envelope(seq=42), resolver, topic_prefix="lab", ingest_time_ms=1718000000999)
    assert record.key == b"robot_001/s1"
    assert record.value[:5] == b"\x00\x00\x00\x01\x02"  # magic 0, id 258 big-endian
    assert record.headers == [
        ("data_type", b"time_series"),
        ("seq", b"42"),
        ("content-type", b"application/vnd.robostream.time_series+avro"),
        ("ingest_time", b"1718000000999"),
    ]
    assert resolver.subjects() == {"lab.time_series-value": [258]}


def test_confluent_client_both_ways() -> None:
    resolver = ConfluentSchemaResolver("mock://robostream-unit")
    env = envelope("images")
    record = encode_record(env, resolver)
    assert resolver.client.get_subjects() == ["robot.images-value"]
    theirs = AvroDeserializer(resolver.client)(
        record.value, SerializationContext("robot.images", MessageField.VALUE)
    )
    assert theirs["payload"]["blob"]["content"] == env.payload["blob"]["content"]
    assert theirs["robot_id"] == "robot_001"

    value = AvroSerializer(resolver.client, schema_str("log"))(
        envelope("log").to_avro(), SerializationContext("robot.log", MessageField.VALUE)
    )
    assert decode_record(value, resolver) == envelope("log")


def test_lookup_only_resolver_needs_a_registered_schema() -> None:
    registering = ConfluentSchemaResolver("mock://robostream-lookup")
    looking = ConfluentSchemaResolver(registering.client, auto_register=False)
    with pytest.raises(SchemaRegistryError, match=r"Schema Not Found") as missing:
        looking.id_for("robot.log-value", schema_str("log"))
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40400)
    schema_id = registering.id_for("robot.log-value", schema_str("log"))
    assert looking.id_for("robot.log-value", schema_str("log")) == schema_id


def test_older_writer_schema_is_resolved_to_the_current_one() -> None:
    old = load_schema(DataType.TIME_SERIES)
    payload = old["fields"][-1]["type"]
    payload["fields"] = [f for f in payload["fields"] if f["name"] not in ("units", "channels")]
    resolver = InMemorySchemaResolver()
    old_id = resolver.id_for("robot.time_series-value", json.dumps(old))
    current = envelope()
    datum = current.to_avro()
    datum["payload"] = {k: v for k, v in datum["payload"].items() if k not in ("units", "channels")}
    from robostream.schemas.codec import _wire_value

    value = _wire_value(old_id, resolver.schema_for(old_id), datum)
    decoded = decode_record(value, resolver)
    assert decoded.payload["channels"] == {} and decoded.payload["units"] == {}
    assert decoded.payload["pose"] == current.payload["pose"]


def test_session_and_rpc_events() -> None:
    resolver = InMemorySchemaResolver()
    start: dict[str, Any] = {
        "timestamp": 1718000000000000,
        "robot_id": "robot_001",
        "session_id": "s1",
        "kind": "start",
        "config": {
            "sensors": ["pose", "joints", "camera:front"],
            "rates_hz": {"pose": 100.0, "metrics": 1.0},
            "cameras": [{"camera_id": "front", "width": 640, "height": 360, "fps": 30.0, "encoding": "jpeg"}],
        },
    }
    value = encode_value("session_event", start, resolver, "robot.sessions-value")
    name, datum = decode_value(value, resolver)
    assert name == "session_event" and datum["config"]["cameras"][0]["streams"] == ["rgb"]
    assert datum["timestamp"] == 1718000000000000 and datum["stats"] is None

    request = {
        "timestamp": 1718000000000000,
        "robot_id": "robot_001",
        "kind": "request",
        "correlation_id": "5f0c7a52-1d2b-4d7e-9a8e-2f1b3c4d5e6f",
        "method": "camera.set_exposure",
        "params": b"\x81\xa2ms\x05",
        "deadline": 1718000005000000,
    }
    name, datum = decode_value(encode_value("rpc_event", request, resolver, "robot.rpc-value"), resolver)
    assert (name, datum["deadline"], datum["status"]) == ("rpc_event", 1718000005000000, None)

    bad_id = r"field config\.cameras\[0\]\.camera_id; expected 1-64 characters"
    with pytest.raises(ValidationError, match=bad_id) as caught:
        validate_event(
            "session_event",
            {
                **start,
                "config": {
                    **start["config"],
                    "cameras": [
                        {"camera_id": "../x", "width": 1, "height": 1, "fps": 1.0, "encoding": "jpeg"}
                    ],
                },
            },
        )
    assert caught.value.path == "config.cameras[0].camera_id"
    assert caught.value.code is ErrorCode.INVALID_ID
    assert caught.value.got == "'../x' (str)"
