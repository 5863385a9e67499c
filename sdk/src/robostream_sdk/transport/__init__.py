"""How a robot reaches the gateway: WebSocket (``/v1/stream``) or HTTPS streaming (``/v1/ingest``).

A :class:`Transport` opens :class:`Connection` objects; a connection sends batch frames (always
given as MessagePack, with the format each travels in; JSON ones are converted) and control
messages, and yields the gateway's messages until it ends with :class:`ConnectionLostError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from robostream_sdk.errors import SdkError
from robostream_sdk.wire import FrameFormat

TransportKind = Literal["ws", "https"]

WS_PATH = "/v1/stream"
HTTP_PATH = "/v1/ingest"


class TransportError(SdkError):
    """The gateway could not be reached (network, DNS, TLS, timeout)."""


class GatewayRefusedError(TransportError):
    """The gateway answered but refused the connection (HTTP status before any streaming)."""

    def __init__(self, status: int, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def unauthorized(self) -> bool:
        return self.status in (401, 403)


class ConnectionLostError(SdkError):
    """The connection ended: WebSocket close ``code`` (None for HTTP or a broken socket)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"{code}: {reason}" if code is not None else reason)
        self.code = code
        self.reason = reason


class Connection(ABC):
    """One open connection to the gateway."""

    kind: TransportKind
    #: Whether control messages (rpc_response, session_event) can be sent on it.
    supports_control: bool = False

    @abstractmethod
    async def send_batch(self, frame: bytes, fmt: FrameFormat = "msgpack") -> None:
        """Send one batch frame (MessagePack bytes) as ``fmt`` where the connection can mix formats
        (WebSocket with ``auto`` framing), else in the connection's one format.

        Raises :class:`ConnectionLostError`."""

    @abstractmethod
    async def send_control(self, message: dict[str, Any]) -> None:
        """Send one control message. Raises :class:`ConnectionLostError`."""

    @abstractmethod
    async def receive(self) -> dict[str, Any]:
        """The next gateway message. Raises :class:`ConnectionLostError` when the connection ends."""

    @abstractmethod
    async def close(self) -> None:
        """Close (idempotent); unanswered batches stay in the spool."""


class Transport(ABC):
    """Opens connections to one gateway endpoint."""

    kind: TransportKind
    url: str

    @abstractmethod
    async def connect(self) -> Connection:
        """Open a connection. Raises :class:`TransportError` or :class:`GatewayRefusedError`."""


def endpoint_url(gateway_url: str, kind: TransportKind) -> str:
    """The endpoint of ``kind`` for a gateway base URL (``ws(s)://`` or ``http(s)://`` host:port).

    ``http://h:8080`` -> ``ws://h:8080/v1/stream`` (ws) or ``http://h:8080/v1/ingest`` (https);
    a path other than the two endpoints is kept as a prefix (a gateway behind a proxy).
    """
    parts = urlsplit(gateway_url)
    secure = parts.scheme in ("https", "wss")
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"gateway URL {gateway_url!r}: expected ws(s):// or http(s)://host:port")
    scheme = ("wss" if secure else "ws") if kind == "ws" else ("https" if secure else "http")
    path = parts.path.rstrip("/")
    for known in (WS_PATH, HTTP_PATH):
        if path.endswith(known):
            path = path[: -len(known)]
    path += WS_PATH if kind == "ws" else HTTP_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds form only), None if absent or odd."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def http_url(host: str, port: int, tls: bool = False) -> str:
    """``http(s)://host:port``, an IPv6 host in brackets."""
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}"
