"""Dead letters: what the gateway rejected, with the reason in Kafka-Connect-style headers.

The value is what the robot sent: the offending envelope re-serialised in the frame's format
(MessagePack or JSON), or the raw frame when the frame as a whole was unusable (cut to
``topics.max_message_bytes``; ``__error.truncated`` says so). The key is the envelope's
``robot_id/session_id`` when it was readable, else the connection's robot id.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import msgpack
import orjson

from robostream.schemas import KafkaRecord

HEADER_PREFIX = "__error."
CONTENT_TYPES = {"msgpack": "application/msgpack", "json": "application/json"}
_HOST = socket.gethostname()


def _text(value: Any) -> bytes:
    return str(value).encode("utf-8", "replace")[:4096]


def error_headers(
    error: dict[str, Any],
    *,
    robot_id: str | None,
    source: str,
    content_type: str,
    original_size: int,
    truncated: bool,
) -> list[tuple[str, bytes]]:
    """``__error.*`` headers: code, message, data_type, robot_id, source and where it failed."""
    fields: dict[str, Any] = {
        "code": error["code"],
        "message": error["message"],
        "data_type": error.get("data_type"),
        "robot_id": robot_id,
        "source": source,
        "path": error.get("path") or None,
        "index": error.get("index"),
        "seq": error.get("seq"),
        "expected": error.get("expected") or None,
        "got": error.get("got") or None,
        "content_type": content_type,
        "original_size": original_size,
        "truncated": "true" if truncated else None,
        "timestamp": int(time.time() * 1000),
        "gateway": _HOST,
    }
    return [(HEADER_PREFIX + name, _text(value)) for name, value in fields.items() if value is not None]


def serialise_item(item: Any, fmt: str) -> bytes:
    """One envelope (as the robot sent it) in the frame's format."""
    if fmt == "json":
        try:
            return orjson.dumps(item)
        except TypeError:
            return repr(item).encode("utf-8", "replace")
    try:
        packed: bytes = msgpack.packb(item, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return repr(item).encode("utf-8", "replace")
    return packed


def dlq_record(
    value: bytes,
    error: dict[str, Any],
    *,
    key: bytes | None,
    robot_id: str | None,
    source: str,
    fmt: str,
    max_bytes: int,
    original_size: int | None = None,
) -> KafkaRecord:
    """A DLQ record holding ``value`` (cut to ``max_bytes``) and the reason in its headers."""
    size = len(value) if original_size is None else original_size
    truncated = len(value) > max_bytes or size > len(value)
    headers = error_headers(
        error, robot_id=robot_id, source=source, content_type=CONTENT_TYPES.get(fmt, fmt),
        original_size=size, truncated=truncated,
    )
    return KafkaRecord(key or (robot_id or "").encode(), bytes(value[:max_bytes]), headers)


def envelope_key(item: Any) -> bytes | None:
    """``robot_id/session_id`` of a (possibly invalid) envelope when both are short strings."""
    if type(item) is not dict:
        return None
    robot, session = item.get("robot_id"), item.get("session_id")
    if isinstance(robot, str) and isinstance(session, str) and len(robot) + len(session) < 256:
        return f"{robot}/{session}".encode("utf-8", "replace")
    return None
