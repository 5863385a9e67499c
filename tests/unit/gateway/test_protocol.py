"""The frames the gateway sends, and how it tells control messages from batches."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from robostream.gateway.protocol import (
    ALL_CODES,
    RETRIABLE_CODES,
    GatewayCode,
    ack_frame,
    control_type,
    decode_message,
    encode_message,
    gateway_error,
    looks_like_map,
    nack_frame,
    slow_down_frame,
)
from robostream.schemas import ErrorCode, ValidationError


@pytest.mark.parametrize(
    ("data", "fmt", "is_map"),
    [
        (msgpack.packb({"type": "rpc_response"}), "msgpack", True),
        (msgpack.packb({f"k{i}": i for i in range(20)}), "msgpack", True),  # map16
        (msgpack.packb([{"seq": 1}]), "msgpack", False),
        (b"", "msgpack", False),
        ('  {"type": "x"}', "json", True),
        (b'[{"seq": 1}]', "json", False),
    ],
)
def test_maps_and_lists_are_told_apart_from_the_first_byte(data: bytes | str, fmt: str, is_map: bool) -> None:
    assert looks_like_map(data, fmt) is is_map  # type: ignore[arg-type]


def test_a_control_message_has_a_type_and_no_data_type() -> None:
    assert control_type({"type": "rpc_response", "correlation_id": "c1"}) == "rpc_response"
    assert control_type({"type": "x", "data_type": "log"}) is None  # an envelope with a stray field
    assert control_type([{"type": "rpc_response"}]) is None


def test_messages_encode_as_msgpack_with_bytes_or_json_with_base64() -> None:
    message = {"type": "rpc_request", "params": {"blob": b"\x00\x01"}}
    assert msgpack.unpackb(encode_message(message, "msgpack")) == message
    assert orjson.loads(encode_message(message, "json"))["params"] == {"blob": "AAE="}
    assert decode_message(encode_message(message, "msgpack"), "msgpack") == message
    with pytest.raises(ValueError, match="not valid json"):
        decode_message(b"{", "json")


def test_ack_nack_and_slow_down_shapes() -> None:
    assert ack_frame(3, 41, 10, 1) == {"type": "ack", "batch": 3, "seq": 41, "count": 10, "rejected": 1}
    error = ValidationError(
        ErrorCode.INVALID_FIELD, "bad", data_type="log", path="payload.level", index=2, seq=7
    )
    assert nack_frame(3, error, retriable=False, dlq=True) == {
        "type": "nack",
        "batch": 3,
        "index": 2,
        "seq": 7,
        "code": "invalid_field",
        "message": str(error),
        "data_type": "log",
        "path": "payload.level",
        "retriable": False,
        "dlq": True,
    }
    assert slow_down_frame(500, 10, 20, "gateway") == {
        "type": "slow_down",
        "retry_after_ms": 500,
        "in_flight_bytes": 10,
        "limit_bytes": 20,
        "scope": "gateway",
    }


def test_gateway_errors_read_like_validation_errors() -> None:
    error = gateway_error(GatewayCode.FORBIDDEN_ROBOT_ID, "not yours", index=1)
    assert error == {"code": "forbidden_robot_id", "message": "not yours [forbidden_robot_id]", "index": 1}


def test_only_transient_failures_are_retriable_and_every_code_is_listed() -> None:
    assert {"kafka_error", "storage_error", "shutting_down", "rate_limited"} == RETRIABLE_CODES
    assert set(ErrorCode) <= set(ALL_CODES) and "forbidden_robot_id" in ALL_CODES
    assert len(ALL_CODES) == len(set(ALL_CODES))
