"""``POST /v1/ingest``: a streaming (chunked) body of batches, answered by a stream of acks.

The request body is length-prefixed MessagePack or NDJSON (see :mod:`robostream.gateway.framing`);
the response (status 200, sent as soon as the request is accepted) streams nacks, acks and
``slow_down`` messages in the same framing while the body is still being read. Refusals come
before the stream starts: 401 (token), 415 (content type), 429 + ``Retry-After`` (the gateway's
in-flight budget is spent, or the robot has too many connections), 503 (shutting down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from robostream.gateway.auth import AuthError, Identity
from robostream.gateway.connection import GATEWAY_KEY, Connection, Shared
from robostream.gateway.framing import (
    CONTENT_TYPES,
    MSGPACK_STREAM,
    NDJSON,
    Frame,
    NdjsonSplitter,
    encode_length_prefixed,
    media_type,
    splitter_for,
)
from robostream.gateway.limits import ConnectionLimitError
from robostream.gateway.protocol import FrameFormat, GatewayCode, encode_message, error_frame
from robostream.httpserver import stream_body

if TYPE_CHECKING:
    from robostream.gateway.app import Gateway

log = logging.getLogger(__name__)


class HttpConnection(Connection):
    """One streaming ``POST /v1/ingest``."""

    transport = "http"

    def __init__(self, shared: Shared, identity: Identity, fmt: FrameFormat,
                 response: web.StreamResponse) -> None:
        super().__init__(shared, identity, fmt)
        self.response = response

    async def _write(self, message: dict[str, Any]) -> None:
        data = encode_message(message, self.fmt)
        await self.response.write(encode_length_prefixed(data) if self.fmt == "msgpack" else data + b"\n")


def refusal(status: int, code: GatewayCode, message: str, *, retry_after_ms: int | None = None,
            headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error response sent instead of the ack stream."""
    extra = dict(headers or {})
    if retry_after_ms is not None:
        extra["Retry-After"] = str(max(1, math.ceil(retry_after_ms / 1000)))
    extras = {} if retry_after_ms is None else {"retry_after_ms": retry_after_ms}
    body = error_frame(code, message, **extras)
    return web.json_response(body, status=status, headers=extra)


def _saturated(gateway: Gateway) -> bool:
    budget = gateway.budget
    return budget.waiting > 0 or budget.used + gateway.settings.gateway.max_frame_bytes > budget.limit


async def handle_ingest(request: web.Request) -> web.StreamResponse:
    """The HTTP streaming endpoint."""
    gateway = request.app[GATEWAY_KEY]
    retry = gateway.settings.gateway.retry_after_ms
    if gateway.draining:
        return refusal(503, GatewayCode.SHUTTING_DOWN, "gateway shutting down", retry_after_ms=retry)
    try:
        identity = gateway.authenticate(request, "http")
    except AuthError as exc:
        return refusal(401, GatewayCode.UNAUTHORIZED, str(exc),
                       headers={"WWW-Authenticate": 'Bearer realm="robostream"'})
    fmt = CONTENT_TYPES.get(media_type(request.content_type))
    if fmt is None:
        return refusal(415, GatewayCode.UNSUPPORTED_MEDIA_TYPE,
                       f"Content-Type must be {MSGPACK_STREAM} or {NDJSON}, got {request.content_type!r}")
    if _saturated(gateway):
        gateway.metrics.slow_downs.labels("http", "gateway").inc()
        return refusal(429, GatewayCode.OVERLOADED,
                       "the gateway is waiting for Kafka; retry after the hint", retry_after_ms=retry)
    try:
        gateway.connections.open(identity.robot_id)
    except ConnectionLimitError as exc:
        gateway.metrics.connections_rejected.labels("http", "too_many_connections").inc()
        return refusal(429, GatewayCode.TOO_MANY_CONNECTIONS, str(exc), retry_after_ms=retry)
    stream_body(request)  # an open-ended stream of batches, bounded by gateway.idle_timeout_s per chunk
    try:
        return await _stream(gateway, request, identity, fmt)
    finally:
        gateway.connections.close(identity.robot_id)


async def _stream(gateway: Gateway, request: web.Request, identity: Identity,
                  fmt: FrameFormat) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": MSGPACK_STREAM if fmt == "msgpack" else NDJSON,
        "Cache-Control": "no-store",
    })
    response.enable_chunked_encoding()
    await response.prepare(request)
    conn = HttpConnection(gateway.shared, identity, fmt, response)
    gateway.metrics.connections.labels("http").inc()
    gateway.live.add(conn)
    conn.start_acking()
    ending: dict[str, Any] | None = None
    conn.reader = asyncio.create_task(_read_body(gateway, conn, request), name="http-reader")
    try:
        ending = await conn.reader
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        ending = error_frame(GatewayCode.SHUTTING_DOWN, "gateway shutting down; send the rest again")
    except Exception:
        log.exception("http stream of %s failed", identity.robot_id)
        ending = error_frame(GatewayCode.INTERNAL_ERROR, "internal error; send unacked batches again")
    finally:
        await conn.finish_acking(gateway.settings.gateway.shutdown_timeout_s)
        if ending is not None:
            await conn.send(ending)
        gateway.live.discard(conn)
        gateway.metrics.connections.labels("http").dec()
    if not conn.peer_gone:
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
    return response


async def _read_body(gateway: Gateway, conn: HttpConnection, request: web.Request) -> dict[str, Any] | None:
    """Feed the body to the splitter and submit every frame; an error message if it ended badly."""
    idle = gateway.settings.gateway.idle_timeout_s
    splitter = splitter_for(conn.fmt, conn.max_frame)
    content = request.content
    while not conn.draining:
        conn.interruptible = True
        try:
            chunk = await asyncio.wait_for(content.readany(), idle)
        except TimeoutError:
            return error_frame(GatewayCode.IDLE_TIMEOUT, f"no data for {idle:g}s (gateway.idle_timeout_s)")
        finally:
            conn.interruptible = False
        if not chunk:
            break
        for item in splitter.feed(chunk):
            await _submit(conn, item)
    if conn.draining:
        return error_frame(GatewayCode.SHUTTING_DOWN, "gateway shutting down; send the rest again")
    if isinstance(splitter, NdjsonSplitter):
        for item in splitter.close():
            await _submit(conn, item)
    elif not splitter.idle:
        return error_frame(GatewayCode.BAD_FRAMING, f"body ended inside a frame ({splitter.buffered} bytes)")
    return None


async def _submit(conn: HttpConnection, item: Any) -> None:
    if isinstance(item, Frame):
        await conn.submit(item.data, conn.fmt)
    else:
        await conn.submit_oversized(item.prefix, item.size, conn.fmt)
