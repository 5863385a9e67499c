"""What every handler reaches through ``request.app[CONTEXT]``: settings, stores, the live hub,
the robot caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from robostream.config import Settings

if TYPE_CHECKING:
    from robostream.api.live import LiveHub
    from robostream.api.rpc import RobotCalls
    from robostream.api.stores import Stores


@dataclass
class HistoryStats:
    """Counters of telemetry streams (``/healthz``; tests watch ``open_streams``)."""

    open_streams: int = 0
    streams: int = 0
    rows_sent: int = 0
    #: The latest stream: when its first bytes were written, when its last read finished
    #: (``time.monotonic()``): first bytes leave before the query finishes.
    first_write_at: float | None = None
    reads_done_at: float | None = None


@dataclass
class ApiContext:
    settings: Settings
    stores: Stores
    hub: LiveHub
    robot_calls: RobotCalls
    history: HistoryStats = field(default_factory=HistoryStats)


CONTEXT = web.AppKey("robostream_api", ApiContext)


def context_of(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]
