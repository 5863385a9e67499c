"""The robot-side SDK: stream robot data to the gateway over WebSocket or HTTPS.

:class:`RobotClient` (asyncio) and :class:`SyncRobotClient` (blocking) batch envelopes by count,
bytes and time, write every batch to a disk spool before sending it, resend what is unacked
after a reconnect or a restart, back off with jitter, and honour the gateway's ``slow_down`` and
HTTP 429. See ``docs/producers.md``. Needs msgpack and websockets only (``[https]``: aiohttp for
the HTTPS transport; ``[numpy]``: NumPy arrays as packed columns); never imports the platform.
"""

from robostream_sdk.backoff import Backoff
from robostream_sdk.client import ClientOptions, RobotClient, gateway_url_from
from robostream_sdk.contract import DataType, build_envelope, validate_id
from robostream_sdk.counters import Counters, messages_in
from robostream_sdk.errors import ErrorCode, SdkError, ValidationError
from robostream_sdk.sender import RpcError, RpcHandler
from robostream_sdk.session import CameraConfig, SessionConfig, SessionStats
from robostream_sdk.spool import Spool, SpoolLockedError
from robostream_sdk.sync_client import FlushResult, SyncRobotClient
from robostream_sdk.transport import ConnectionLostError, GatewayRefusedError, TransportError
from robostream_sdk.version import __version__

__all__ = [
    "Backoff",
    "CameraConfig",
    "ClientOptions",
    "ConnectionLostError",
    "Counters",
    "DataType",
    "ErrorCode",
    "FlushResult",
    "GatewayRefusedError",
    "RobotClient",
    "RpcError",
    "RpcHandler",
    "SdkError",
    "SessionConfig",
    "SessionStats",
    "Spool",
    "SpoolLockedError",
    "SyncRobotClient",
    "TransportError",
    "ValidationError",
    "__version__",
    "build_envelope",
    "gateway_url_from",
    "messages_in",
    "validate_id",
]
