"""The robot-side SDK: stream robot data to the gateway over WebSocket or HTTPS.

:class:`RobotClient` (asyncio) and :class:`SyncRobotClient` (blocking) batch envelopes by count,
bytes and time, write every batch to a disk spool before sending it, resend what is unacked
after a reconnect or a restart, back off with jitter, and honour the gateway's ``slow_down`` and
HTTP 429. See ``docs/producers.md``. This package never imports the gateway.
"""

from robostream.producers.backoff import Backoff
from robostream.producers.client import ClientOptions, RobotClient, gateway_url_from
from robostream.producers.counters import Counters, messages_in
from robostream.producers.sender import RpcError, RpcHandler
from robostream.producers.session import CameraConfig, SessionConfig, SessionStats
from robostream.producers.spool import Spool, SpoolLockedError
from robostream.producers.sync_client import FlushResult, SyncRobotClient

__all__ = [
    "Backoff",
    "CameraConfig",
    "ClientOptions",
    "Counters",
    "FlushResult",
    "RobotClient",
    "RpcError",
    "RpcHandler",
    "SessionConfig",
    "SessionStats",
    "Spool",
    "SpoolLockedError",
    "SyncRobotClient",
    "gateway_url_from",
    "messages_in",
]
