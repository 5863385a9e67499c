"""``POST /v1/ingest``: one long chunked request body of batches, a streamed response of acks.

MessagePack batches are length-prefixed (4 bytes, big-endian); JSON batches are NDJSON lines.
The response streams the gateway's messages in the same framing. Refusals come as an HTTP status
before the stream starts (401, 415, 429 + ``Retry-After``, 503). HTTP carries no RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from robostream_sdk.transport import (
    Connection,
    ConnectionLostError,
    GatewayRefusedError,
    Transport,
    TransportError,
    retry_after_seconds,
)
from robostream_sdk.wire import (
    LENGTH,
    MSGPACK_STREAM,
    NDJSON,
    FrameFormat,
    decode_message,
    length_prefixed,
    to_json_frame,
)

_BROKEN = (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError)


class HttpsConnection(Connection):
    """An open ``POST /v1/ingest`` stream."""

    kind = "https"
    supports_control = False

    def __init__(self, session: aiohttp.ClientSession, response: aiohttp.ClientResponse,
                 body: asyncio.Queue[bytes | None], fmt: FrameFormat) -> None:
        self.session = session
        self.response = response
        self.body = body
        self.fmt = fmt
        self._closed = False

    async def send_batch(self, frame: bytes, fmt: FrameFormat = "msgpack") -> None:
        # one content type per stream: every batch goes in the stream's format
        if self._closed or self.response.content.at_eof():
            raise ConnectionLostError(None, "the ingest stream has ended")
        data = length_prefixed(frame) if self.fmt == "msgpack" else to_json_frame(frame) + b"\n"
        await self.body.put(data)

    async def send_control(self, message: dict[str, Any]) -> None:
        raise ConnectionLostError(None, "control messages need the WebSocket transport")

    async def receive(self) -> dict[str, Any]:
        content = self.response.content
        try:
            if self.fmt == "msgpack":
                size = LENGTH.unpack(await content.readexactly(LENGTH.size))[0]
                data = await content.readexactly(size)
            else:
                data = b""
                while not data.strip():
                    data = await content.readline()
                    if not data:
                        raise asyncio.IncompleteReadError(b"", None)
        except asyncio.IncompleteReadError:
            raise ConnectionLostError(None, "the gateway ended the ingest stream") from None
        except _BROKEN as exc:
            raise ConnectionLostError(None, f"ingest stream broken: {exc}") from None
        try:
            return decode_message(data, self.fmt)
        except ValueError as exc:
            raise ConnectionLostError(None, str(exc)) from None

    async def close(self) -> None:
        """End the request body, let the gateway finish its answer (2 s at most), close."""
        if self._closed:
            return
        self._closed = True
        self.body.put_nowait(None)
        with contextlib.suppress(*_BROKEN, TimeoutError, RuntimeError):
            await asyncio.wait_for(self.response.content.read(), 2.0)
        self.response.close()
        await self.session.close()


async def _body(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await queue.get()) is not None:
        yield chunk


class HttpsTransport(Transport):
    """Opens ingest streams to ``url`` (``http(s)://host:port/v1/ingest``)."""

    kind = "https"

    def __init__(self, url: str, headers: dict[str, str], *, fmt: FrameFormat = "msgpack",
                 ssl_context: ssl.SSLContext | None = None, open_timeout_s: float = 10.0) -> None:
        self.url = url
        self.fmt = fmt
        content_type = MSGPACK_STREAM if fmt == "msgpack" else NDJSON
        self.headers = {**headers, "Content-Type": content_type, "Accept": content_type}
        self.ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self.open_timeout_s = open_timeout_s

    async def connect(self) -> HttpsConnection:
        timeout = aiohttp.ClientTimeout(total=None, connect=self.open_timeout_s, sock_read=None)
        session = aiohttp.ClientSession(timeout=timeout)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        try:
            response = await self._post(session, queue)
        except BaseException:
            queue.put_nowait(None)
            await session.close()
            raise
        return HttpsConnection(session, response, queue, self.fmt)

    async def _post(self, session: aiohttp.ClientSession,
                    queue: asyncio.Queue[bytes | None]) -> aiohttp.ClientResponse:
        # Expect: 100-continue makes the client send the headers before the first batch exists.
        try:
            response = await asyncio.wait_for(
                session.post(self.url, data=_body(queue), headers=self.headers, ssl=self.ssl, chunked=True,
                             expect100=True),
                self.open_timeout_s,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransportError(f"cannot open {self.url}: {exc or type(exc).__name__}") from None
        if response.status != 200:
            refusal = await _refusal(response)
            response.close()
            raise refusal
        return response


async def _refusal(response: aiohttp.ClientResponse) -> GatewayRefusedError:
    message = response.reason or "refused"
    retry = retry_after_seconds(response.headers.get("Retry-After"))
    with contextlib.suppress(*_BROKEN, ValueError, TimeoutError):
        body = json.loads(await asyncio.wait_for(response.read(), 5))
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            if isinstance(body.get("retry_after_ms"), int | float):
                retry = max(retry or 0.0, body["retry_after_ms"] / 1000)
    return GatewayRefusedError(response.status, message, retry_after_s=retry)
