"""Recording sessions: their configuration, statistics and the ``session_event`` messages.

A session start carries its configuration and a session end its statistics
(``schemas/avro/session_event.avsc``). Over WebSocket the client sends them as control
messages ``{"type": "session_event", "event": <session_event datum>}`` when a session starts
or ends and again after every reconnect (the sessions topic is compacted per robot/session, so a
repeat is harmless).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from robostream_sdk.contract import check_id
from robostream_sdk.errors import FieldError
from robostream_sdk.version import __version__

EndReason = Literal["completed", "aborted", "error", "timeout"]


@dataclass(frozen=True)
class CameraConfig:
    """One camera of a session."""

    camera_id: str
    width: int
    height: int
    fps: float
    encoding: str = "jpeg"
    streams: tuple[str, ...] = ("rgb",)

    def to_datum(self) -> dict[str, Any]:
        return {"camera_id": self.camera_id, "width": self.width, "height": self.height,
                "fps": float(self.fps), "encoding": self.encoding, "streams": list(self.streams)}


@dataclass(frozen=True)
class SessionConfig:
    """What a session records (``SessionConfig`` of the session_event schema)."""

    sensors: tuple[str, ...] = ()
    rates_hz: Mapping[str, float] = field(default_factory=dict)
    cameras: tuple[CameraConfig, ...] = ()
    data_types: tuple[str, ...] = ()
    software_version: str | None = f"robostream-sdk {__version__}"
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_datum(self) -> dict[str, Any]:
        return {
            "sensors": list(self.sensors),
            "rates_hz": {k: float(v) for k, v in self.rates_hz.items()},
            "cameras": [c.to_datum() for c in self.cameras],
            "data_types": list(self.data_types),
            "software_version": self.software_version,
            "extra": dict(self.extra),
        }


@dataclass
class SessionStats:
    """What one session sent (records are envelopes; messages as in :mod:`.counters`)."""

    session_id: str
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    records: int = 0
    messages: int = 0
    bytes: int = 0
    last_seq: int = -1
    rejected_records: int = 0
    per_data_type: Counter[str] = field(default_factory=Counter)
    reason: EndReason = "completed"
    drained: bool = False  # every batch acked when the session ended

    @property
    def duration_s(self) -> float:
        return (self.ended_at or time.time()) - self.started_at

    def to_datum(self) -> dict[str, Any]:
        return {"reason": self.reason, "duration_s": round(self.duration_s, 6), "messages": self.records,
                "bytes": self.bytes, "per_data_type": dict(self.per_data_type),
                "errors": self.rejected_records}


def new_session_id() -> str:
    """``s-YYYYmmdd-HHMMSS-<6 hex>`` (UTC), a valid id that sorts by start time."""
    return f"s-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def session_event(robot_id: str, session_id: str, kind: Literal["start", "end"], *,
                  config: SessionConfig | Mapping[str, Any] | None = None,
                  stats: SessionStats | None = None, at: float | None = None) -> dict[str, Any]:
    """A ``session_event`` datum (timestamp in µs), its ids checked. Raises ``ValidationError``."""
    if isinstance(config, SessionConfig):
        config_datum: Any = config.to_datum()
    elif config is not None:
        config_datum = {**SessionConfig().to_datum(), **dict(config)}
    else:
        config_datum = SessionConfig().to_datum() if kind == "start" else None
    datum = {
        "timestamp": int((time.time() if at is None else at) * 1_000_000),
        "robot_id": robot_id,
        "session_id": session_id,
        "kind": kind,
        "config": config_datum if kind == "start" else None,
        "stats": stats.to_datum() if kind == "end" and stats is not None else None,
    }
    try:
        check_id(robot_id, "robot_id")
        check_id(session_id, "session_id")
        for i, camera in enumerate(config_datum["cameras"] if kind == "start" else ()):
            try:
                check_id(camera.get("camera_id") if isinstance(camera, dict) else camera, "camera_id")
            except FieldError as exc:
                raise exc.at(f"[{i}]").at("cameras").at("config") from None
    except FieldError as exc:
        raise exc.to_validation_error(data_type="session_event") from None
    return datum


def control_message(event: dict[str, Any]) -> dict[str, Any]:
    """The WebSocket control message carrying a session event."""
    return {"type": "session_event", "event": event}
