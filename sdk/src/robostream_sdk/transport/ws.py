"""``WS /v1/stream``: batches as binary (MessagePack) or text (JSON) frames, messages back.

With ``auto`` framing each batch goes in its own format (JSON text for metadata-like types,
MessagePack binary for the rest) on the one connection; the gateway's messages and the robot's
control messages are MessagePack. A forced format is used for everything.
"""

from __future__ import annotations

import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from robostream_sdk.transport import (
    Connection,
    ConnectionLostError,
    GatewayRefusedError,
    Transport,
    TransportError,
    retry_after_seconds,
)
from robostream_sdk.wire import (
    FrameFormat,
    Framing,
    connection_format,
    decode_message,
    encode_control,
    to_json_frame,
)


class WsConnection(Connection):
    """An open WebSocket to the gateway."""

    kind = "ws"
    supports_control = True

    def __init__(self, ws: ClientConnection, framing: Framing) -> None:
        self.ws = ws
        self.framing = framing
        self.fmt: FrameFormat = connection_format(framing)  # of the gateway's and control messages

    async def send_batch(self, frame: bytes, fmt: FrameFormat = "msgpack") -> None:
        wire = fmt if self.framing == "auto" else self.framing
        data: bytes | str = frame if wire == "msgpack" else to_json_frame(frame).decode("utf-8")
        await self._send(data)

    async def send_control(self, message: dict[str, Any]) -> None:
        data = encode_control(message, self.fmt)
        await self._send(data if self.fmt == "msgpack" else data.decode("utf-8"))

    async def _send(self, data: bytes | str) -> None:
        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            raise _lost(exc) from None

    async def receive(self) -> dict[str, Any]:
        while True:
            try:
                data = await self.ws.recv()
            except ConnectionClosed as exc:
                raise _lost(exc) from None
            try:
                return decode_message(data, self.fmt)
            except ValueError as exc:
                raise ConnectionLostError(None, str(exc)) from None

    async def close(self) -> None:
        await self.ws.close()


def _lost(exc: ConnectionClosed) -> ConnectionLostError:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return ConnectionLostError(None, "connection dropped without a close frame")
    return ConnectionLostError(frame.code, frame.reason or "closed")


class WsTransport(Transport):
    """Opens WebSockets to ``url`` (``ws(s)://host:port/v1/stream``) with ``framing``."""

    kind = "ws"

    def __init__(self, url: str, headers: dict[str, str], *, framing: Framing = "auto",
                 ssl_context: ssl.SSLContext | None = None, open_timeout_s: float = 10.0,
                 ping_interval_s: float = 20.0) -> None:
        self.url = f"{url}{'&' if '?' in url else '?'}format={connection_format(framing)}"
        self.headers = headers
        self.framing = framing
        self.ssl = ssl_context if url.startswith("wss:") else None
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s

    async def connect(self) -> WsConnection:
        try:
            ws = await ws_connect(
                self.url, additional_headers=self.headers, ssl=self.ssl, max_size=None, compression=None,
                open_timeout=self.open_timeout_s, ping_interval=self.ping_interval_s,
                ping_timeout=self.ping_interval_s, close_timeout=5, user_agent_header="robostream-sdk",
            )
        except InvalidStatus as exc:
            response = exc.response
            raise GatewayRefusedError(response.status_code, response.reason_phrase or "refused",
                          retry_after_s=retry_after_seconds(response.headers.get("Retry-After"))) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise TransportError(f"cannot open {self.url}: {exc or type(exc).__name__}") from None
        return WsConnection(ws, self.framing)
