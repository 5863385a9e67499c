"""Serving an aiohttp app: every robostream server (gateway, API, schema registry, sink REST API)
starts, listens (TLS or not) and stops through :class:`HttpServer`.

The public ones get read deadlines, so slow clients (slowloris) cannot hold connections.

aiohttp bounds the size of request lines and headers (``max_line_size``, ``max_field_size``) and
the idle time between requests (``keepalive_timeout``), but not the time a request takes to
arrive: its ``RequestHandler`` waits for the end of the headers without a deadline (the keep-alive
timer is armed once per idle period and may be configured far longer than a header deadline), and
a handler reading the body waits as long as the client trickles. So each connection's protocol
is wrapped in a small watchdog:

* **headers** must be complete within ``header_timeout_s`` of a request's first byte: else the
  client gets ``408`` (``Connection: close``, nothing else being written) and the connection is
  closed;
* a **body** must be complete within ``body_timeout_s`` of its headers: else the handler is
  cancelled, the client gets ``408`` and the connection is closed. Handlers that read their body
  as an open-ended stream with a bound of their own call :func:`stream_body` to opt out. A body
  the handler leaves unread (an early error answer) is drained for at most ``body_timeout_s``
  (10 s if longer), then the connection is closed.

The one reach-in is :attr:`aiohttp.web.Server.request_handler` (an attribute aiohttp's own
``RequestHandler`` reads), checked in :meth:`HttpServer.start`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from robostream.config import HttpServerSettings
from robostream.errors import RobostreamError
from robostream.tls import http_url

log = logging.getLogger(__name__)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_BODY_DEADLINE = web.RequestKey("robostream_body_deadline", asyncio.TimerHandle)

#: After an answer given before the body was read, aiohttp reads and drops the rest of it (so the
#: client sees the answer, not a reset) for this long at most -- or ``body_timeout_s`` if shorter.
LINGER_S = 10.0


@dataclass(frozen=True)
class ReadDeadlines:
    """How long a request may take to arrive; ``section`` names the settings in messages."""

    header_timeout_s: float
    body_timeout_s: float
    keepalive_timeout_s: float
    section: str

    @classmethod
    def of(cls, settings: HttpServerSettings, section: str) -> ReadDeadlines:
        """The deadlines of a server's settings section (``section``: its name, e.g. ``api``)."""
        return cls(settings.header_timeout_s, settings.body_timeout_s, settings.keepalive_timeout_s,
                   section)


class RequestBodyTimeoutError(RobostreamError, TimeoutError):
    """Set on a request body that did not arrive in time (a TimeoutError: aiohttp's lingering read
    of an unread body stops at it quietly)."""


class AiohttpChangedError(RobostreamError):
    """aiohttp no longer has what the watchdog relies on: update robostream.httpserver."""


def stream_body(request: web.BaseRequest) -> None:
    """No total deadline for this request's body: the handler reads it as an open-ended stream
    and bounds it itself (e.g. the gateway's ``POST /v1/ingest``, idle time between chunks)."""
    deadline = request.get(_BODY_DEADLINE)
    if deadline is not None:
        deadline.cancel()


def _timeout_bytes(message: str) -> bytes:
    """A whole 408 response, written straight to the transport when no request is in progress."""
    body = json.dumps({"code": "request_timeout", "message": message}).encode()
    head = (f"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def _timeout_response(message: str) -> web.Response:
    response = web.json_response({"code": "request_timeout", "message": message}, status=408)
    response.force_close()
    return response


class _Watched(asyncio.Protocol):
    """Forwards to aiohttp's protocol; starts the header deadline when a request's first bytes
    arrive while no request is being handled, and closes the connection when it passes."""

    def __init__(self, inner: asyncio.Protocol, deadlines: ReadDeadlines) -> None:
        self.inner = inner
        self.deadlines = deadlines
        self.transport: asyncio.Transport | None = None
        self.active = 0  # requests being handled (headers complete)
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.active == 0 and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.deadlines.header_timeout_s, self._headers_too_slow)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.transport = None
        self.inner.connection_lost(exc)

    def request_started(self) -> None:
        self.active += 1
        self._cancel()

    def request_finished(self) -> None:
        self.active -= 1

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        transport = self.transport
        if self.active or transport is None or transport.is_closing():
            return
        d = self.deadlines
        log.info("closing %s: request headers not complete within %gs", _peer(transport), d.header_timeout_s)
        if transport.get_write_buffer_size() == 0:  # no earlier response still on its way
            transport.write(_timeout_bytes(f"request headers not received within {d.header_timeout_s:g}s "
                                           f"({d.section}.header_timeout_s)"))
        transport.close()


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a client"


def _watch_requests(inner: Handler, deadlines: ReadDeadlines) -> Handler:
    """``inner`` marked on its connection's watchdog, with the body deadline around it."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        watched = transport.get_protocol() if transport is not None else None
        if isinstance(watched, _Watched):
            watched.request_started()
        try:
            if not request.body_exists or request.content.is_eof():
                return await inner(request)
            return await _with_body_deadline(inner, request, deadlines)
        finally:
            if isinstance(watched, _Watched):
                watched.request_finished()

    return handle


async def _with_body_deadline(inner: Handler, request: web.BaseRequest,
                              deadlines: ReadDeadlines) -> web.StreamResponse:
    """Run ``inner``; cancel it if the body is not complete ``body_timeout_s`` after the headers."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        if not request.content.is_eof():
            expired = True
            task.cancel()

    request[_BODY_DEADLINE] = asyncio.get_running_loop().call_later(deadlines.body_timeout_s, expire)
    response: web.StreamResponse | None = None
    try:
        response = await inner(request)
    except asyncio.CancelledError:
        if not expired or task.uncancel() > 0:
            raise
    finally:
        request[_BODY_DEADLINE].cancel()
    if not expired:
        assert response is not None
        return response
    if response is not None:  # the handler swallowed the cancellation
        task.uncancel()
    request.content.set_exception(RequestBodyTimeoutError())
    log.info("closing %s: request body not complete within %gs",
             _peer(request.transport) if request.transport else "a client", deadlines.body_timeout_s)
    if response is not None and response.prepared:
        response.force_close()
        return response
    return _timeout_response(f"request body not received within {deadlines.body_timeout_s:g}s "
                             f"({deadlines.section}.body_timeout_s)")


class ServerAddress:
    """Where a server listens: ``host``, ``port`` (the real one once started) and, for TLS, an
    ``ssl_context``; hence its :attr:`url`."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None

    @property
    def tls(self) -> bool:
        """True with an ``ssl_context``: https:// (and wss://) only."""
        return self.ssl_context is not None

    @property
    def url(self) -> str:
        """``http(s)://host:port`` (the real port once started)."""
        return http_url(self.host, self.port, self.tls)


class HttpServer(ServerAddress):
    """An aiohttp app on ``host:port`` (``port`` 0: any free port, see :attr:`port` once started),
    over TLS with ``ssl_context``: every robostream server starts and stops through it.

    With :class:`ReadDeadlines` slow clients are cut (the public servers: gateway, API); without,
    aiohttp's own limits apply (the internal ones: schema registry, sink REST API).
    ``handler_args`` go to aiohttp's ``RequestHandler``.
    """

    def __init__(self, app: web.Application, host: str, port: int, deadlines: ReadDeadlines | None = None,
                 *, ssl_context: ssl.SSLContext | None = None, shutdown_timeout: float = 5.0,
                 **handler_args: Any) -> None:
        self.host, self.port, self.deadlines = host, port, deadlines
        self.ssl_context = ssl_context
        if deadlines is not None:
            handler_args = {"keepalive_timeout": deadlines.keepalive_timeout_s,
                            "lingering_time": min(LINGER_S, deadlines.body_timeout_s), **handler_args}
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=shutdown_timeout, **handler_args)
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        """Set the app up and listen (on failure nothing is left running)."""
        await self._runner.setup()
        try:
            factory = self._protocol_factory()
            self._listener = await asyncio.get_running_loop().create_server(
                factory, self.host, self.port, ssl=self.ssl_context, backlog=128)
        except BaseException:
            await self._runner.cleanup()
            raise
        for sock in self._listener.sockets:
            self.port = int(sock.getsockname()[1])
            break

    def _protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        server = self._runner.server
        if server is not None and self.deadlines is None:
            return server
        if server is None or not callable(getattr(server, "request_handler", None)):
            raise AiohttpChangedError("aiohttp's web.Server has no request_handler: the read deadlines "
                                      "of robostream.httpserver need updating for this aiohttp")
        deadlines = self.deadlines
        assert deadlines is not None
        server.request_handler = _watch_requests(server.request_handler, deadlines)
        return lambda: _Watched(server(), deadlines)

    def stop_listening(self) -> None:
        """Accept no new connections (the open ones are served on)."""
        if self._listener is not None:
            self._listener.close()

    async def stop(self) -> None:
        """Stop listening, then shut the app down (open connections get ``shutdown_timeout``)."""
        self.stop_listening()
        await self._runner.cleanup()
        self._listener = None


def route_of(request: web.Request) -> str:
    """The request's route as registered (``/v1/sessions/{session_id}``), or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


async def measured(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                   done: Callable[[int, float], None]) -> web.StreamResponse:
    """``await handler(request)``, then ``done(status, seconds)`` however it ended: an
    ``HTTPException`` counts with its status, any other error as 500 (for request metrics)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        done(status, time.perf_counter() - started)
