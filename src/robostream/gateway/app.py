"""The gateway server: wiring, routes, start-up checks and graceful shutdown.

    async with Gateway(settings) as gateway:     # port 0 picks a free port
        print(gateway.url)                       # ws(s)://... is gateway.ws_url

Start-up fails with :class:`GatewayStartError` (and the reason) when the schema registry, Kafka
or the catalogued topics are not there. Shutdown stops accepting, stops reading, waits for
Kafka's delivery reports, acks what is durable and closes every connection with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from types import TracebackType
from typing import Any

from aiohttp import web

from robostream.config import Settings
from robostream.errors import RobostreamError
from robostream.gateway.auth import AuthError, Identity, TokenStore, authenticate
from robostream.gateway.backpressure import ByteBudget
from robostream.gateway.claimcheck import ClaimCheckStore
from robostream.gateway.connection import GATEWAY_KEY, Connection, Shared
from robostream.gateway.http import handle_ingest
from robostream.gateway.ingest import BatchIngestor
from robostream.gateway.limits import ConnectionRegistry
from robostream.gateway.metrics import GatewayMetrics
from robostream.gateway.producer import GatewayProducer
from robostream.gateway.rpc import RpcRouter
from robostream.gateway.sessions import SessionEvents
from robostream.gateway.ws import handle_stream
from robostream.httpserver import HttpServer, ReadDeadlines, ServerAddress
from robostream.schemas import ConfluentSchemaResolver, DataType, SchemaIdResolver, schema_str
from robostream.schemas.catalog import subject_for, subject_name
from robostream.tls import TlsConfigError, server_ssl_context
from robostream.topics import (
    catalogue,
    dlq_topic,
    rpc_requests_topic,
    rpc_responses_topic,
    sessions_topic,
    topic_for,
)

log = logging.getLogger(__name__)
HEALTH_CACHE_S = 2.0


class GatewayStartError(RobostreamError):
    """The gateway cannot start; the message says what is missing and how to fix it."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A server TLS context from ``gateway.tls_cert`` / ``gateway.tls_key`` (None: plain TCP)."""
    try:
        return server_ssl_context(settings.gateway.tls_cert, settings.gateway.tls_key)
    except TlsConfigError as exc:
        raise GatewayStartError(str(exc)) from None


def warm_up_schemas(resolver: SchemaIdResolver, settings: Settings) -> None:
    """Blocking: register (or look up) every schema the gateway writes, so the hot path never waits."""
    prefix = settings.topics.prefix
    for data_type in DataType:
        resolver.id_for(subject_for(data_type, prefix), schema_str(data_type))
    resolver.id_for(subject_name(rpc_responses_topic(settings)), schema_str("rpc_event"))
    resolver.id_for(subject_name(sessions_topic(settings)), schema_str("session_event"))


class Gateway(ServerAddress):
    """The ingest server. ``port`` overrides ``gateway.port`` (0: any free port)."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        resolver: SchemaIdResolver | None = None,
        producer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.host = host or settings.gateway.host
        self.port = settings.gateway.port if port is None else port
        self.metrics = GatewayMetrics()
        self.tokens = TokenStore.from_settings(settings)
        self.resolver: SchemaIdResolver = resolver or ConfluentSchemaResolver(settings.schema_registry.url)
        self.producer = GatewayProducer(settings, producer_overrides)
        self.claim_checks = ClaimCheckStore(settings)
        self.budget = ByteBudget(settings.gateway.max_inflight_bytes, "gateway")
        self.connections = ConnectionRegistry(settings.gateway.max_connections_per_robot)
        self.ingestor = BatchIngestor(settings, self.producer, self.resolver, self.claim_checks, self.metrics)
        self.shared = Shared(settings, self.ingestor, self.budget, self.metrics)
        self.rpc = RpcRouter(settings, self.producer, self.resolver, self.tokens, self.metrics)
        self.sessions = SessionEvents(settings, self.producer, self.resolver)
        self.live: set[Connection] = set()
        self.draining = False
        self.ssl_context = ssl_context(settings)
        self._server: HttpServer | None = None
        self._health: tuple[float, str | None] = (0.0, None)
        self.metrics.inflight_limit.set(settings.gateway.max_inflight_bytes)

    # -- addresses -------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint, ``ws(s)://host:port/v1/stream``."""
        return self.url.replace("http", "ws", 1) + "/v1/stream"

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the registry, Kafka and topics, then listen."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._check_dependencies)
        except BaseException:
            self.claim_checks.close()
            raise
        self.producer.start()
        try:
            await self.rpc.start()
            g = self.settings.gateway
            server = HttpServer(self.build_app(), self.host, self.port, ReadDeadlines.of(g, "gateway"),
                                ssl_context=self.ssl_context, shutdown_timeout=g.shutdown_timeout_s)
            await server.start()
        except BaseException:
            await self.rpc.stop()
            await loop.run_in_executor(None, self.producer.close, 5.0)
            self.claim_checks.close()
            raise
        self._server = server
        self.port = server.port
        log.info("Gateway listening on %s (ws %s, tls %s, %d robots with tokens)", self.url, self.ws_url,
                 "on" if self.tls else "off", len(self.tokens))

    def _check_dependencies(self) -> None:
        problem = self.producer.probe(timeout=10)
        if problem is not None:
            raise GatewayStartError(f"Kafka at {self.settings.kafka.bootstrap} did not answer: {problem}")
        missing = self._missing_topics()
        if missing:
            raise GatewayStartError(
                f"{len(missing)} topic(s) missing, e.g. {', '.join(missing[:3])}: run "
                "`robostream topics create`"
            )
        try:
            warm_up_schemas(self.resolver, self.settings)
        except Exception as exc:  # the registry client raises several types
            raise GatewayStartError(
                f"schema registry at {self.settings.schema_registry.url} did not answer: {exc} "
                "(is `robostream schema-registry` running? see schema_registry.url)"
            ) from None
        problem = self.claim_checks.bucket_problem()
        if problem is not None:
            log.warning("claim-check will fail until S3 answers: %s", problem)

    def _missing_topics(self) -> list[str]:
        needed = [topic_for(dt, self.settings) for dt in DataType]
        needed += [dlq_topic(self.settings), rpc_requests_topic(self.settings),
                   rpc_responses_topic(self.settings)]
        known = {spec.name for spec in catalogue(self.settings)}
        present = set(self.producer.topics(timeout=10))
        return [name for name in needed if name in known and name not in present]

    async def stop(self, reason: str = "gateway shutting down") -> None:
        """Graceful shutdown: stop accepting, stop reading, flush, ack what is durable, close."""
        if self._server is None:
            return
        self.draining = True
        loop = asyncio.get_running_loop()
        timeout = self.settings.gateway.shutdown_timeout_s
        self._server.stop_listening()
        for conn in list(self.live):
            conn.stop_reading()
        deadline = time.monotonic() + timeout
        left = await loop.run_in_executor(None, self.producer.flush, timeout)
        if left:
            log.warning("shutdown: %d records still without a delivery report after %.0fs", left, timeout)
        await self._connections_closed(max(1.0, deadline - time.monotonic()))
        await self.rpc.stop()
        await self._server.stop()
        self._server = None
        await loop.run_in_executor(None, self.producer.close, 5.0)
        await loop.run_in_executor(None, self.claim_checks.close)
        log.info("Gateway stopped (%s)", reason)

    async def _connections_closed(self, grace_s: float) -> None:
        deadline = time.monotonic() + grace_s
        while self.live and time.monotonic() < deadline:  # noqa: ASYNC110 (handlers remove themselves)
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- requests --------------------------------------------------------------------------------

    def authenticate(self, request: web.Request, transport: str) -> Identity:
        """The request's identity; counts failures. Raises :class:`AuthError`."""
        try:
            return authenticate(request.headers, self.tokens,
                                allow_unauthenticated=self.settings.auth.allow_unauthenticated)
        except AuthError:
            self.metrics.auth_failures.labels(transport).inc()
            raise

    def build_app(self) -> web.Application:
        """The aiohttp application: ``/v1/stream``, ``/v1/ingest``, ``/healthz``, ``/metrics``."""
        app = web.Application(client_max_size=1024 * 1024)
        app[GATEWAY_KEY] = self
        app.router.add_get("/v1/stream", handle_stream)
        app.router.add_post("/v1/ingest", handle_ingest)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _kafka_problem(self) -> str | None:
        checked, problem = self._health
        if time.monotonic() - checked > HEALTH_CACHE_S:
            problem = await asyncio.get_running_loop().run_in_executor(None, self.producer.probe, 2.0)
            self._health = (time.monotonic(), problem)
        return problem

    async def _healthz(self, _request: web.Request) -> web.Response:
        kafka = await self._kafka_problem()
        redis = self.rpc.registry.problem  # several gateways share RPC calls through Redis
        ok = kafka is None and not self.draining
        body = {
            "status": "ok" if ok else ("draining" if self.draining else "degraded"),
            "kafka": "up" if kafka is None else f"down: {kafka}",
            "connections": len(self.live),
            "in_flight_bytes": self.budget.used,
            "in_flight_limit_bytes": self.budget.limit,
            "in_flight_peak_bytes": self.budget.peak,
            "producer_queue": self.producer.pending(),
            "rpc_registry": "up" if redis is None else f"down: {redis}",
        }
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        self.metrics.inflight_bytes.set(self.budget.used)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type})


async def serve_gateway(settings: Settings, *, host: str | None = None, port: int | None = None,
                        stop: asyncio.Event | None = None) -> None:
    """Run a gateway until ``stop`` is set (or forever), then shut it down gracefully."""
    gateway = Gateway(settings, host=host, port=port)
    await gateway.start()
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await gateway.stop()
