"""Envelope details: timestamp forms, keys, claim-check."""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack
import orjson
import pytest

from robostream.schemas import (
    InMemorySchemaResolver,
    ValidationError,
    build_envelope,
    decode_frame,
    decode_record,
    encode_record,
    inline_blob,
    with_claim_check,
)
from robostream.schemas.examples import example_payload

EXPECTED_US = 1718000000123456


@pytest.mark.parametrize(
    "timestamp",
    [
        1718000000.123456,
        "2024-06-10T06:13:20.123456Z",
        "2024-06-10T08:13:20.123456+02:00",
        msgpack.Timestamp(1718000000, 123456000),
    ],
    ids=["float seconds", "ISO Z", "ISO offset", "msgpack timestamp"],
)
def test_timestamp_forms(timestamp: object) -> None:
    env = {
        "timestamp": timestamp,
        "robot_id": "r1",
        "session_id": "s1",
        "data_type": "log",
        "seq": 0,
        "payload": {"level": "info", "message": "hi"},
    }
    [envelope] = decode_frame(msgpack.packb(env, use_bin_type=True, datetime=False)).envelopes
    assert envelope.timestamp_us == EXPECTED_US
    assert envelope.timestamp == datetime(2024, 6, 10, 6, 13, 20, 123456, tzinfo=UTC)


def test_integer_seconds_and_defaults_filled() -> None:
    frame = orjson.dumps(
        {
            "timestamp": 1718000000,
            "robot_id": "r1",
            "session_id": "s1",
            "data_type": "log",
            "seq": 0,
            "payload": {"level": "info", "message": "hi"},
        }
    )
    [envelope] = decode_frame(frame, "json").envelopes
    assert envelope.timestamp_us == 1718000000 * 1_000_000
    assert envelope.payload == {"level": "info", "logger": "", "message": "hi", "attributes": {}}


def test_claim_check_moves_the_bytes_out() -> None:
    envelope = build_envelope("images", example_payload("images"), robot_id="r1", session_id="s1", seq=9)
    data = inline_blob(envelope)
    assert data is not None and len(data) == 4096
    by_ref, moved = with_claim_check(envelope, bucket="robostream", key="raw/r1/s1/frames/1_rgb.jpg")
    assert moved == data and inline_blob(by_ref) is None
    assert by_ref.payload["blob"]["content"] == {
        "bucket": "robostream",
        "key": "raw/r1/s1/frames/1_rgb.jpg",
        "size": 4096,
        "sha256": envelope.payload["blob"]["sha256"],
    }
    resolver = InMemorySchemaResolver()
    record = encode_record(by_ref, resolver)
    assert len(record.value) < 300
    assert decode_record(record.value, resolver) == by_ref
    with pytest.raises(ValidationError) as caught:
        with_claim_check(envelope, bucket="robostream", key="raw/../../etc")
    assert caught.value.path == "payload.blob.content.key"
    with pytest.raises(ValueError):
        with_claim_check(by_ref, bucket="robostream", key="k")
