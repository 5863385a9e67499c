"""``WS /v1/stream``: batches in (MessagePack binary or JSON text frames), acks and RPC out.

The handshake is authenticated (``Authorization: Bearer <token>``); a refused robot gets the
WebSocket and then a close frame with a 44xx code and the reason (browsers and most clients
cannot read the body of a refused handshake). Server frames use ``?format=msgpack`` (default)
or ``?format=json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from robostream.gateway.auth import AuthError, Identity
from robostream.gateway.connection import GATEWAY_KEY, Connection, Shared
from robostream.gateway.limits import ConnectionLimitError
from robostream.gateway.protocol import (
    FORMATS,
    CloseCode,
    FrameFormat,
    GatewayCode,
    control_type,
    decode_message,
    encode_message,
    error_frame,
    looks_like_map,
)

if TYPE_CHECKING:
    from robostream.gateway.app import Gateway

log = logging.getLogger(__name__)


class WsConnection(Connection):
    """A robot's WebSocket."""

    transport = "ws"

    def __init__(self, shared: Shared, identity: Identity, fmt: FrameFormat,
                 ws: web.WebSocketResponse) -> None:
        super().__init__(shared, identity, fmt)
        self.ws = ws

    async def _write(self, message: dict[str, Any]) -> None:
        data = encode_message(message, self.fmt)
        if self.fmt == "json":
            await self.ws.send_str(data.decode("utf-8"))
        else:
            await self.ws.send_bytes(data)


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    with contextlib.suppress(*_GONE):
        await ws.close(code=code, message=reason.encode("utf-8")[:123])


_GONE = (ConnectionError, RuntimeError, asyncio.CancelledError)


def _format_of(request: web.Request) -> FrameFormat | None:
    fmt = request.query.get("format", "msgpack")
    return fmt if fmt in FORMATS else None


async def handle_stream(request: web.Request) -> web.StreamResponse:
    """The WebSocket endpoint."""
    gateway = request.app[GATEWAY_KEY]
    settings = gateway.settings.gateway
    ws = web.WebSocketResponse(max_msg_size=2 * settings.max_frame_bytes, autoping=False,
                               compress=False)
    fmt = _format_of(request)
    await ws.prepare(request)
    if fmt is None:
        await _close(ws, CloseCode.BAD_REQUEST, "format must be msgpack or json")
        return ws
    if gateway.draining:
        await _close(ws, CloseCode.GOING_AWAY, "gateway shutting down; reconnect later")
        return ws
    try:
        identity = gateway.authenticate(request, "ws")
        gateway.connections.open(identity.robot_id)
    except AuthError as exc:
        await _close(ws, CloseCode.UNAUTHORIZED, str(exc))
        return ws
    except ConnectionLimitError as exc:
        gateway.metrics.connections_rejected.labels("ws", "too_many_connections").inc()
        await _close(ws, CloseCode.TOO_MANY_CONNECTIONS, str(exc))
        return ws
    conn = WsConnection(gateway.shared, identity, fmt, ws)
    try:
        await _serve(gateway, conn)
    finally:
        gateway.connections.close(identity.robot_id)
    return ws


async def _serve(gateway: Gateway, conn: WsConnection) -> None:
    gateway.metrics.connections.labels("ws").inc()
    gateway.live.add(conn)
    robot = conn.identity.robot_id
    log.info("Robot %s connected (ws, %s)", robot or "(any)", conn.fmt)
    conn.start_acking()
    if robot is not None:
        gateway.rpc.attach(robot, conn)
    close_code, reason = int(CloseCode.GOING_AWAY), "gateway shutting down"
    conn.reader = asyncio.create_task(_read_loop(gateway, conn), name="ws-reader")
    try:
        close_code, reason = await conn.reader
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the handler itself is cancelled, not just the reader (drain)
    except Exception:
        log.exception("ws connection of %s failed", robot)
        close_code, reason = int(CloseCode.INTERNAL_ERROR), "internal error; reconnect and resend unacked"
    finally:
        if robot is not None:
            gateway.rpc.detach(robot, conn)
        await conn.finish_acking(gateway.settings.gateway.shutdown_timeout_s)
        await _close(conn.ws, close_code, reason)
        gateway.live.discard(conn)
        gateway.metrics.connections.labels("ws").dec()
        log.info("Robot %s disconnected (ws): %s", robot or "(any)", reason)


async def _read_loop(gateway: Gateway, conn: WsConnection) -> tuple[int, str]:
    """Read frames until the robot closes, goes idle, or the gateway drains."""
    idle = gateway.settings.gateway.idle_timeout_s
    ws = conn.ws
    while not conn.draining:
        conn.interruptible = True
        try:
            msg = await ws.receive(timeout=idle)
        except TimeoutError:
            await conn.send(error_frame(GatewayCode.IDLE_TIMEOUT, f"no frame for {idle:g}s"))
            return CloseCode.IDLE_TIMEOUT, f"idle for {idle:g}s (gateway.idle_timeout_s)"
        finally:
            conn.interruptible = False
        kind = msg.type
        if kind is WSMsgType.BINARY:
            await _on_frame(gateway, conn, msg.data, "msgpack")
        elif kind is WSMsgType.TEXT:
            await _on_frame(gateway, conn, msg.data, "json")
        elif kind is WSMsgType.PING:
            with contextlib.suppress(*_GONE):
                await ws.pong(msg.data)
        elif kind is WSMsgType.PONG:
            continue
        elif kind is WSMsgType.ERROR:
            log.info("ws of %s: %s", conn.identity.robot_id, ws.exception())
            return CloseCode.MESSAGE_TOO_BIG, _error_reason(ws)
        else:  # CLOSE, CLOSING, CLOSED
            return 1000, "closed by the robot"
    return CloseCode.GOING_AWAY, "gateway shutting down"


def _error_reason(ws: web.WebSocketResponse) -> str:
    exc = ws.exception()
    return str(exc)[:120] if exc else "protocol error"


async def _on_frame(gateway: Gateway, conn: WsConnection, data: bytes | str, fmt: FrameFormat) -> None:
    """A control message (``rpc_response``) or a batch."""
    if len(data) <= conn.max_frame and looks_like_map(data, fmt):
        try:
            message = decode_message(data, fmt)
        except ValueError:
            message = None
        kind = control_type(message)
        if kind is not None:
            await _on_control(gateway, conn, kind, message)
            return
    await conn.submit(data, fmt)


async def _on_control(gateway: Gateway, conn: WsConnection, kind: str, message: dict[str, Any]) -> None:
    if kind == "rpc_response":
        await conn.send(await gateway.rpc.on_response(conn.identity, message))
        return
    if kind == "session_event":
        await conn.send(await gateway.sessions.on_event(conn.identity, message))
        return
    await conn.send(error_frame(
        GatewayCode.UNKNOWN_MESSAGE_TYPE,
        f"unknown message type {kind[:40]!r}: robots send batches of envelopes, rpc_response or "
        "session_event",
        message_type=kind[:40],
    ))
