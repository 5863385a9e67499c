"""The sink worker: the chosen connectors' tasks as threads, and the REST API beside them.

Tasks are threads because the clients they drive (confluent-kafka, pymongo, boto3, redis-py)
are blocking and release the GIL while they wait on the network; the REST API runs on its own
asyncio loop in one more thread, so a slow store never delays a status request.

The live connector (Redis) shares the interpreter with bulk ones (MongoDB's conversion is Python
work in bursts): with Python's default 5 ms GIL switch interval, every GIL handoff of the live
task can wait 5 ms behind a bulk task, which made the live view's p99 6x its median. The worker
runs with :func:`robostream.gctuning.shorten_gil_handoffs` instead (measured: sink -> Redis
publish p99 125 ms -> 19 ms with one robot). The local stack and docker-compose go further and run
the live connector in a worker process of its own (``role="live"``) beside the store worker
(``role="store"``, at a lower CPU priority): see :class:`robostream.config.SinksSettings`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from robostream.config import ConnectorSettings, Settings, SinkRole
from robostream.gctuning import shorten_gil_handoffs
from robostream.httpserver import HttpServer, ServerAddress
from robostream.sinks.connector import (
    Connector,
    ConnectorConfigError,
    ResolverFactory,
    SinkFactory,
    registry_resolver,
    worker_id,
)
from robostream.sinks.rest import WORKER_KEY, build_app

#: How long ``stop`` lets REST requests in progress finish (aiohttp's default).
SHUTDOWN_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


def select_connectors(settings: Settings, names: Sequence[str] | None,
                      role: SinkRole = "all") -> list[ConnectorSettings]:
    """The connectors to run: those named (enabled or not), or every enabled one of ``role``.

    ``live``: the enabled connectors whose kind is in ``sinks.live_kinds`` (the live view's path);
    ``store``: the other enabled ones; ``all``: every enabled connector.
    """
    known = {c.name: c for c in settings.connectors}
    if not names:
        enabled = [c for c in settings.connectors if c.enabled]
        if role == "all":
            return enabled
        live = set(settings.sinks.live_kinds)
        return [c for c in enabled if (c.kind in live) == (role == "live")]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConnectorConfigError(
            f"unknown connector(s) {', '.join(unknown)}; config.yaml declares "
            f"{', '.join(known) or 'none'}"
        )
    return [known[n] for n in names]


def role_settings(settings: Settings, role: SinkRole, port: int | None = None) -> Settings:
    """``settings`` for a worker of ``role``: its REST API (``sinks.port`` from here on) listens on
    ``port``, by default the role's (:meth:`~robostream.config.SinksSettings.rest_port`)."""
    port = settings.sinks.rest_port(role) if port is None else port
    if port == settings.sinks.port:
        return settings
    return settings.model_copy(update={"sinks": settings.sinks.model_copy(update={"port": port})})


def lower_priority(niceness: int) -> None:
    """Lower this process's CPU priority (threads started afterwards inherit it)."""
    if niceness > 0:
        os.nice(niceness)


class RestServer(ServerAddress):
    """The REST API on a background thread's event loop; ``url`` once started."""

    def __init__(self, connectors: Mapping[str, Connector], worker: str, host: str, port: int) -> None:
        self._app = build_app(connectors, worker)
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="connect-rest",
                                        daemon=True)
        self._server: HttpServer | None = None

    async def _start(self) -> None:
        server = HttpServer(self._app, self.host, self.port, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await server.start()
        self._server, self.port = server, server.port
        self._app[WORKER_KEY]["id"] = self.worker_id

    @property
    def worker_id(self) -> str:
        """``host:port`` as Kafka Connect names a worker (the real port once listening)."""
        return f"{socket.gethostname()}:{self.port}"

    def start(self) -> None:
        """Listen (port 0 picks a free port)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        log.info("sink REST API on %s", self.url)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class Worker:
    """Runs connectors (each with its tasks) and their REST API in this process.

    Args:
        names: connectors to run (default: every enabled one in ``settings.connectors``).
        sink_factories: ``{kind: factory}`` overrides (tests, benchmarks).
        resolver_factory: how tasks find Avro schemas (default: the schema registry).
        rest: serve the REST API.
        role: which enabled connectors run (``all``, ``live``, ``store``) and the REST API's port.
        port: the REST API's port instead of the role's (0: any free port).
    """

    def __init__(
        self,
        settings: Settings,
        names: Sequence[str] | None = None,
        *,
        sink_factories: Mapping[str, SinkFactory] | None = None,
        resolver_factory: ResolverFactory = registry_resolver,
        rest: bool = True,
        role: SinkRole = "all",
        port: int | None = None,
    ) -> None:
        settings = role_settings(settings, role, port)
        self.settings = settings
        self.worker_id = worker_id(settings)
        factories = sink_factories or {}
        self.connectors: dict[str, Connector] = {
            c.name: Connector(c, settings, sink_factory=factories.get(c.kind),
                              resolver_factory=resolver_factory, worker=self.worker_id)
            for c in select_connectors(settings, names, role)
        }
        if not self.connectors:
            raise ConnectorConfigError(f"no enabled connector for the {role} worker; config.yaml's "
                                       f"connectors: and sinks.live_kinds decide which runs where")
        self.rest = (RestServer(self.connectors, self.worker_id, settings.sinks.host,
                                settings.sinks.port) if rest else None)
        self._stopped = threading.Event()

    def start(self) -> None:
        """Start the REST API, then every connector's tasks."""
        shorten_gil_handoffs()
        if self.rest is not None:
            self.rest.start()
            self.worker_id = self.rest.worker_id
        for connector in self.connectors.values():
            connector.worker_id = self.worker_id
            connector.start()
            log.info("connector %s started: %d task(s) on %s", connector.name,
                     connector.config.tasks, ", ".join(connector.subscription))

    def stop(self) -> None:
        """Stop every task (each lands and commits what it holds), then the REST API."""
        for connector in self.connectors.values():
            connector.stop()
        if self.rest is not None:
            self.rest.stop()
        self._stopped.set()

    def run_forever(self) -> None:
        """Start, then block until SIGINT/SIGTERM; stop cleanly."""
        wake = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping the sink worker", signum)
            wake.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not wake.wait(1.0):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
