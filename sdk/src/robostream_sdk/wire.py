"""The robot's side of the gateway protocol (``docs/gateway.md``): frames out, messages in.

Robots send batch frames (a MessagePack array of envelopes, or its JSON form) and control
messages (``rpc_response``, ``session_event``); the gateway answers every batch with one ``ack``,
after one ``nack`` per rejected envelope, and may send ``slow_down``, ``error`` and
``rpc_request`` messages. This module does not import the gateway.
"""

from __future__ import annotations

import base64
import contextlib
import struct
from typing import Any, Literal

import msgpack

from robostream_sdk.contract import METADATA_TYPES
from robostream_sdk.packed import unpack_time_series

try:  # orjson when installed (the platform has it): faster, and NaN becomes null
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, default=_json_default)

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover (the SDK alone: the standard library)
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(_nan_to_none(obj), default=_json_default, separators=(",", ":"),
                          allow_nan=False).encode()

    _loads = json.loads


def _nan_to_none(obj: Any) -> Any:
    """NaN (a missing time_series sample) as JSON null, as orjson writes it."""
    if type(obj) is float:
        return None if obj != obj else obj
    if type(obj) is dict:
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if type(obj) is list:
        return [_nan_to_none(v) for v in obj]
    return obj

#: How one batch frame travels: MessagePack (WebSocket binary frame) or JSON (text frame).
FrameFormat = Literal["msgpack", "json"]
#: A client's framing: ``auto`` (the seed's: JSON text frames for metadata-like types, MessagePack
#: binary frames for telemetry and binary types, on one connection) or one format for everything.
Framing = Literal["auto", "msgpack", "json"]
MSGPACK_STREAM = "application/vnd.robostream.msgpack-stream"
NDJSON = "application/x-ndjson"
LENGTH = struct.Struct(">I")

#: WebSocket close codes of the gateway.
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_IDLE = 4408
CLOSE_TOO_MANY = 4429

#: Nack codes meaning "send it again later" (also flagged ``retriable`` in the nack itself).
RETRIABLE_CODES = frozenset({"kafka_error", "storage_error", "shutting_down", "rate_limited"})


def frame_format(data_type: str, framing: Framing) -> FrameFormat:
    """The format an envelope of ``data_type`` travels in under ``framing``."""
    if framing != "auto":
        return framing
    return "json" if data_type in METADATA_TYPES else "msgpack"


def connection_format(framing: Framing) -> FrameFormat:
    """The format of a connection's gateway messages and of its HTTPS stream (one content type):
    JSON only when forced, else MessagePack."""
    return "json" if framing == "json" else "msgpack"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def to_json_frame(frame: bytes) -> bytes:
    """A MessagePack batch frame as its JSON form (bytes as base64, NaN as null; packed
    time_series columns, e.g. from a spool written in MessagePack mode, as lists)."""
    envelopes = msgpack.unpackb(frame, raw=False)
    for envelope in envelopes if type(envelopes) is list else [envelopes]:
        if type(envelope) is dict and envelope.get("data_type") == "time_series":
            with contextlib.suppress(Exception):  # not the validated shape: sent as it is
                envelope["payload"] = unpack_time_series(envelope["payload"])
    return _dumps(envelopes)


def encode_control(message: dict[str, Any], fmt: FrameFormat) -> bytes:
    """A control message (a map with ``type``) in the connection's format."""
    if fmt == "json":
        return _dumps(message)
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def decode_message(data: bytes | str, fmt: FrameFormat) -> dict[str, Any]:
    """A gateway message; raises ``ValueError`` for anything that is not a map with a ``type``."""
    try:
        message = _loads(data) if fmt == "json" else msgpack.unpackb(data, raw=False)
    except Exception as exc:  # any parser error means a broken frame
        raise ValueError(f"unreadable gateway message: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError(f"unexpected gateway message: {str(message)[:120]}")
    return message


def length_prefixed(frame: bytes) -> bytes:
    """``frame`` with its 4-byte big-endian length in front (HTTP streaming framing)."""
    return LENGTH.pack(len(frame)) + frame


def envelopes_of(frame: bytes) -> list[dict[str, Any]]:
    """The envelopes of a MessagePack batch frame."""
    items = msgpack.unpackb(frame, raw=False)
    return items if isinstance(items, list) else [items]


def pack_envelope(wire: dict[str, Any]) -> bytes:
    """One envelope (its wire map) as MessagePack."""
    packed: bytes = msgpack.packb(wire, use_bin_type=True)
    return packed
