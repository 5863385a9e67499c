"""Connection limits, dead-letter records and claim-check keys."""

from __future__ import annotations

import msgpack
import pytest

from robostream.gateway.claimcheck import needs_claim_check, object_key, with_reference
from robostream.gateway.dlq import dlq_record, envelope_key, serialise_item
from robostream.gateway.limits import ConnectionLimitError, ConnectionRegistry
from robostream.schemas import (
    DataType,
    InMemorySchemaResolver,
    build_envelope,
    decode_record,
    encode_record,
)


def test_connections_per_robot_are_counted_and_limited() -> None:
    registry = ConnectionRegistry(max_per_robot=2)
    registry.open("robot_001")
    registry.open("robot_001")
    with pytest.raises(ConnectionLimitError, match="robot_001 already has 2 open connections"):
        registry.open("robot_001")
    registry.open(None)  # unauthenticated connections without a robot id are not limited per robot
    registry.close("robot_001")
    registry.open("robot_001")
    assert (registry.count("robot_001"), registry.total) == (2, 3)


def test_a_dead_letter_carries_the_reason_in_headers_and_is_cut_to_the_limit() -> None:
    error = {
        "code": "invalid_field",
        "message": "bad [invalid_field]",
        "data_type": "log",
        "path": "payload.x",
        "index": 3,
        "seq": 9,
        "expected": "a string",
        "got": "42 (int)",
    }
    record = dlq_record(
        b"x" * 100,
        error,
        key=b"robot_001/s1",
        robot_id="robot_001",
        source="gateway.ws",
        fmt="msgpack",
        max_bytes=10,
    )
    headers = dict(record.headers)
    assert record.key == b"robot_001/s1" and record.value == b"x" * 10
    assert headers["__error.code"] == b"invalid_field" and headers["__error.path"] == b"payload.x"
    assert headers["__error.index"] == b"3" and headers["__error.seq"] == b"9"
    assert headers["__error.robot_id"] == b"robot_001" and headers["__error.source"] == b"gateway.ws"
    assert headers["__error.content_type"] == b"application/msgpack"
    assert headers["__error.original_size"] == b"100" and headers["__error.truncated"] == b"true"


def test_dead_letters_keep_what_the_robot_sent() -> None:
    item = {"robot_id": "robot_001", "session_id": "s1", "payload": {"b": b"\x00"}}
    assert msgpack.unpackb(serialise_item(item, "msgpack")) == item
    assert envelope_key(item) == b"robot_001/s1"
    assert envelope_key({"robot_id": 5}) is None and envelope_key("junk") is None


def test_claim_check_replaces_large_inline_bytes_by_a_reference_that_encodes() -> None:
    content = bytes(range(256)) * 8
    envelope = build_envelope(
        DataType.IMAGES,
        {
            "camera_id": "front",
            "kind": "rgb",
            "width": 1,
            "height": 1,
            "blob": {"format": "jpeg", "content": content},
        },
        robot_id="robot_001",
        session_id="s1",
        seq=42,
    )
    assert needs_claim_check(envelope, 1024) and not needs_claim_check(envelope, 4096)
    key = object_key(envelope)
    assert key.startswith("raw/robot_001/s1/blobs/images/00000000000000000042-")
    moved = with_reference(envelope, "robostream", key)
    resolver = InMemorySchemaResolver()
    decoded = decode_record(encode_record(moved, resolver).value, resolver)
    blob = decoded.payload["blob"]
    assert blob["content"] == {
        "bucket": "robostream",
        "key": key,
        "size": len(content),
        "sha256": blob["sha256"],
    }
    assert not needs_claim_check(decoded, 1)  # a reference is never moved again
