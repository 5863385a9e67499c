"""The gateway's side of the wire protocol: the frames it sends robots, its codes, its close codes.

Robots send batches (see ``docs/schemas.md``) and, over WebSocket, ``rpc_response`` messages.
The gateway answers every batch with exactly one ``ack``, preceded by one ``nack`` per rejected
envelope, in the order the batches arrived. ``docs/gateway.md`` is the reference for robot
developers; keep the two in step.
"""

from __future__ import annotations

import base64
from enum import IntEnum, StrEnum
from typing import Any, Literal

import msgpack
import orjson

from robostream.schemas import ErrorCode, ValidationError

FrameFormat = Literal["json", "msgpack"]
FORMATS: tuple[FrameFormat, ...] = ("msgpack", "json")


class GatewayCode(StrEnum):
    """Codes the gateway adds to the schema's :class:`~robostream.schemas.ErrorCode` values."""

    UNAUTHORIZED = "unauthorized"
    FORBIDDEN_ROBOT_ID = "forbidden_robot_id"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    OVERLOADED = "overloaded"
    RATE_LIMITED = "rate_limited"
    IDLE_TIMEOUT = "idle_timeout"
    KAFKA_ERROR = "kafka_error"
    STORAGE_ERROR = "storage_error"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL_ERROR = "internal_error"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BAD_FRAMING = "bad_framing"
    RPC_UNKNOWN = "rpc_unknown"
    RPC_INVALID = "rpc_invalid"
    RPC_TOO_MANY_PENDING = "rpc_too_many_pending"


#: Nacks with these codes say "send it again later"; nothing went to the DLQ.
RETRIABLE_CODES: frozenset[str] = frozenset(
    {GatewayCode.KAFKA_ERROR, GatewayCode.STORAGE_ERROR, GatewayCode.SHUTTING_DOWN,
     GatewayCode.RATE_LIMITED}
)

#: Every code a nack or an error frame may carry.
ALL_CODES: tuple[str, ...] = tuple(str(c) for c in ErrorCode) + tuple(str(c) for c in GatewayCode)


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses (4xxx mirror the HTTP statuses)."""

    GOING_AWAY = 1001  # graceful shutdown
    MESSAGE_TOO_BIG = 1009  # a frame above the hard limit (2 x max_frame_bytes)
    INTERNAL_ERROR = 1011
    UNAUTHORIZED = 4401
    BAD_REQUEST = 4400
    IDLE_TIMEOUT = 4408
    TOO_MANY_CONNECTIONS = 4429


# -- frames the gateway sends --------------------------------------------------------------------


def ack_frame(batch: int, seq: int | None, count: int, rejected: int) -> dict[str, Any]:
    """The one answer per batch: ``seq`` is the highest seq of its records Kafka took (or None)."""
    return {"type": "ack", "batch": batch, "seq": seq, "count": count, "rejected": rejected}


def nack_frame(
    batch: int, error: ValidationError | dict[str, Any], *, retriable: bool, dlq: bool
) -> dict[str, Any]:
    """One rejected envelope (``index`` set) or a whole rejected frame (``index`` None).

    An error carrying ``retry_after_ms`` (``rate_limited``) passes it on: resend after that long.
    """
    info = error.to_dict() if isinstance(error, ValidationError) else dict(error)
    frame = {
        "type": "nack",
        "batch": batch,
        "index": info.get("index"),
        "seq": info.get("seq"),
        "code": info["code"],
        "message": info["message"],
        "data_type": info.get("data_type"),
        "path": info.get("path") or "",
        "retriable": retriable,
        "dlq": dlq,
    }
    if info.get("retry_after_ms") is not None:
        frame["retry_after_ms"] = info["retry_after_ms"]
    return frame


def slow_down_frame(
    retry_after_ms: int, in_flight_bytes: int, limit_bytes: int, scope: str
) -> dict[str, Any]:
    """The gateway stopped reading until Kafka catches up; wait ``retry_after_ms`` before more."""
    return {
        "type": "slow_down",
        "retry_after_ms": retry_after_ms,
        "in_flight_bytes": in_flight_bytes,
        "limit_bytes": limit_bytes,
        "scope": scope,
    }


def error_frame(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A problem not tied to one envelope (unknown message type, idle timeout, shutdown)."""
    return {"type": "error", "code": str(code), "message": message, **extra}


def gateway_error(code: GatewayCode | ErrorCode, message: str, **context: Any) -> dict[str, Any]:
    """A nack-ready error dict (same keys as ``ValidationError.to_dict``) for a gateway code."""
    return {"code": str(code), "message": f"{message} [{code}]", **context}


# -- encoding ------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray | memoryview):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def encode_message(message: dict[str, Any], fmt: FrameFormat) -> bytes:
    """A gateway frame as MessagePack (bytes stay bytes) or JSON (bytes as base64) bytes."""
    if fmt == "json":
        return orjson.dumps(message, default=_json_default)
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def decode_message(data: bytes | str, fmt: FrameFormat) -> Any:
    """Parse a frame (MessagePack or JSON); raises ``ValueError`` when it does not parse."""
    try:
        if fmt == "json":
            return orjson.loads(data)
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # any parser failure is the sender's
        raise ValueError(f"not valid {fmt}: {exc}") from None


def looks_like_map(data: bytes | str, fmt: FrameFormat) -> bool:
    """True when a frame holds a map (one envelope or a control message), not a list (a batch)."""
    if fmt == "json":
        text = data.lstrip()[:1] if isinstance(data, str) else bytes(data).lstrip()[:1]
        return text in ("{", b"{")
    if not data:
        return False
    first = data[0] if isinstance(data, bytes | bytearray) else ord(data[0])
    return 0x80 <= first <= 0x8F or first in (0xDE, 0xDF)


def control_type(message: Any) -> str | None:
    """The ``type`` of a control message (``rpc_response``), None for an envelope."""
    if type(message) is dict and "type" in message and "data_type" not in message:
        kind = message["type"]
        return kind if isinstance(kind, str) else repr(kind)
    return None
