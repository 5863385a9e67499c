"""The ML-Dash API application: routes, middlewares, lifecycle.

    app = create_app(settings)                 # an aiohttp Application (tests, embedding)
    async with ApiServer(settings, port=0) as server:
        print(server.url)                      # http://127.0.0.1:<port> (https with api.tls_cert)

Middlewares, outermost first: CORS (also on error answers), errors as ``{code, message}``,
token check (read tokens; write tokens for ``POST /v1/robots/{id}/rpc``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from types import TracebackType

import orjson
from aiohttp import web

from robostream.api.auth import ReadAuth, auth_middleware
from robostream.api.context import CONTEXT, ApiContext, context_of
from robostream.api.cors import CorsPolicy, cors_middleware
from robostream.api.errors import error_middleware
from robostream.api.frames import get_frame, list_frames
from robostream.api.history import get_telemetry
from robostream.api.live import LiveHub, live
from robostream.api.metrics import ApiMetrics
from robostream.api.openapi import openapi_document
from robostream.api.params import NoParams
from robostream.api.rpc import RobotCalls, call_robot
from robostream.api.sessions import get_session, list_robots, list_sessions
from robostream.api.stats import get_stats
from robostream.api.stores import Stores
from robostream.config import Settings
from robostream.httpserver import HttpServer, ReadDeadlines, ServerAddress
from robostream.tls import server_ssl_context

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("robostream.api") / "static"))

#: (method, path) of every route: the OpenAPI document must describe exactly these.
ROUTES = (
    ("GET", "/"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/v1/live"),
    ("GET", "/v1/robots"), ("GET", "/v1/sessions"), ("GET", "/v1/sessions/{id}"),
    ("GET", "/v1/telemetry"), ("GET", "/v1/frames"), ("GET", "/v1/frames/{id}"),
    ("GET", "/v1/stats/{metric}"), ("POST", "/v1/robots/{id}/rpc"),
)


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def openapi(request: web.Request) -> web.Response:
    api = context_of(request).settings.api
    NoParams.parse(request.query, api)
    document = openapi_document(frames_limit=api.frames_limit, stats_limit=api.stats_limit,
                                max_points=api.max_points_limit)
    return web.Response(body=orjson.dumps(document), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    ctx = context_of(request)
    NoParams.parse(request.query, ctx.settings.api)
    problems = await ctx.stores.problems()
    ok = not any(problems.values())
    body = {"status": "ok" if ok else "degraded",
            **{store: "up" if problem is None else f"down: {problem}" for store, problem in problems.items()},
            "live": {"clients": ctx.hub.clients(), "channels": len(ctx.hub.channels),
                     "messages": ctx.hub.messages},
            "history": {"open_streams": ctx.history.open_streams, "streams": ctx.history.streams,
                        "rows_sent": ctx.history.rows_sent}}
    return web.Response(status=200 if ok else 503, body=orjson.dumps(body), content_type="application/json")


METRICS = web.AppKey("robostream_api_metrics", ApiMetrics)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus metrics (``robostream_api_*``)."""
    NoParams.parse(request.query, context_of(request).settings.api)
    exported = request.app[METRICS]
    return web.Response(body=exported.render(), headers={"Content-Type": exported.content_type})


#: The viewer's Service Worker (static/sw.js): it caches what the viewer shows, for offline replay.
SERVICE_WORKER = "/static/sw.js"


async def service_worker_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The Service Worker may control the whole origin (its scope is ``/``, above its own folder),
    and browsers check for a new version of it on every visit."""
    if request.path == SERVICE_WORKER:
        response.headers["Service-Worker-Allowed"] = "/"
        response.headers["Cache-Control"] = "no-cache"


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", index)
    router.add_get("/healthz", healthz)
    router.add_get("/metrics", metrics)
    router.add_get("/openapi.json", openapi)
    router.add_get("/v1/live", live)
    router.add_get("/v1/robots", list_robots)
    router.add_get("/v1/sessions", list_sessions)
    router.add_get("/v1/sessions/{id}", get_session)
    router.add_get("/v1/telemetry", get_telemetry)
    router.add_get("/v1/frames", list_frames)
    router.add_get("/v1/frames/{id}", get_frame)
    router.add_get("/v1/stats/{metric}", get_stats)
    router.add_post("/v1/robots/{id}/rpc", call_robot)
    router.add_static("/static/", STATIC_DIR, append_version=False)
    app.on_response_prepare.append(service_worker_headers)


def create_app(settings: Settings, stores: Stores | None = None) -> web.Application:
    """The API for ``settings`` (clients from ``stores``, or made at start-up and closed after)."""
    api = settings.api
    exported = ApiMetrics(lambda: app[CONTEXT].hub if CONTEXT in app else None)
    app = web.Application(middlewares=[
        exported.middleware,
        cors_middleware(CorsPolicy(api.cors_origins)),
        error_middleware,
        auth_middleware(ReadAuth(api.read_tokens, anonymous=api.anonymous_read),
                        ReadAuth(api.write_tokens, anonymous=False)),
    ])
    app[METRICS] = exported
    add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = stores is None
        used = stores or Stores.connect(settings)
        hub = LiveHub(used.redis)
        calls = RobotCalls(settings)
        app[CONTEXT] = ApiContext(settings, used, hub, calls)
        yield
        await calls.close()
        await hub.close()
        if own:
            await used.close()

    app.cleanup_ctx.append(lifecycle)
    return app


class ApiServer(ServerAddress):
    """The API listening on ``host:port`` (``port=0``: any free port; see :attr:`url`); TLS (https://
    and wss:// only) with ``api.tls_cert``/``api.tls_key``."""

    def __init__(self, settings: Settings, *, host: str | None = None, port: int | None = None,
                 stores: Stores | None = None) -> None:
        self.settings = settings
        self.host = host or settings.api.host
        self.port = settings.api.port if port is None else port
        # Loaded before anything starts: a bad certificate or key fails here, with both paths.
        self.ssl_context = server_ssl_context(settings.api.tls_cert, settings.api.tls_key)
        self.app = create_app(settings, stores)
        self._server: HttpServer | None = None

    @property
    def context(self) -> ApiContext:
        return self.app[CONTEXT]

    async def start(self) -> None:
        server = HttpServer(self.app, self.host, self.port, ReadDeadlines.of(self.settings.api, "api"),
                            ssl_context=self.ssl_context, shutdown_timeout=5)
        await server.start()
        self._server, self.port = server, server.port
        log.info("ML-Dash API listening on %s (viewer %s/, OpenAPI %s/openapi.json, tls %s)",
                 self.url, self.url, self.url, "on" if self.tls else "off")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


async def serve_api(settings: Settings, *, host: str | None = None, port: int | None = None,
                    stop: asyncio.Event | None = None) -> None:
    """Run the API until ``stop`` is set (or forever)."""
    async with ApiServer(settings, host=host, port=port):
        await (stop or asyncio.Event()).wait()
