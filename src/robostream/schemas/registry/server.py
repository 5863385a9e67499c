"""Running the registry: an in-process server object and the long-running ``serve_registry``."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from urllib.parse import urlsplit

from robostream.config import Settings
from robostream.httpserver import HttpServer, ServerAddress
from robostream.schemas.registry.rest import build_app
from robostream.schemas.registry.service import RegistryService
from robostream.schemas.registry.state import RegistryState
from robostream.schemas.registry.store import KafkaStore
from robostream.topics.catalog import min_insync_replicas, schemas_topic

log = logging.getLogger(__name__)

#: How long ``stop`` lets requests in progress finish (a write may wait on Kafka): aiohttp's default.
SHUTDOWN_TIMEOUT_S = 60.0


class SchemaRegistryServer(ServerAddress):
    """A Confluent-compatible Schema Registry backed by a compacted Kafka topic.

    ``await start()`` reads the topic to its end before it listens (so it is ready when
    ``start`` returns); ``url`` is then its base URL; ``await stop()`` shuts it down. Port 0
    picks a free port. Also an async context manager.
    """

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 0,
        topic: str | None = None,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.topic = topic or schemas_topic(settings)
        self.state = RegistryState()
        replicas = settings.kafka.replication_factor
        self.store = KafkaStore(
            settings.kafka.bootstrap,
            self.topic,
            self.state.apply,
            client_id=f"{settings.kafka.client_id}-schema-registry",
            replication_factor=replicas,
            topic_config={"min.insync.replicas": str(min_insync_replicas(replicas))},
            snapshot=self.state.records,
        )
        self._server: HttpServer | None = None

    async def start(self) -> None:
        """Read the schemas topic to its end, then listen."""
        await self.store.start()
        server = HttpServer(build_app(RegistryService(self.state, self.store)), self.host, self.port,
                            shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        try:
            await server.start()
        except BaseException:
            await self.store.stop()
            raise
        self._server, self.port = server, server.port
        log.info("Schema registry listening on %s (topic %s)", self.url, self.topic)

    async def stop(self) -> None:
        """Stop listening, then stop the Kafka reader."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.store.stop()

    async def __aenter__(self) -> SchemaRegistryServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def default_address(settings: Settings) -> tuple[str, int]:
    """Host and port from ``settings.schema_registry.url``."""
    url = settings.schema_registry.url
    return urlsplit(url).hostname or "127.0.0.1", settings.schema_registry.port


async def serve_registry(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the registry until ``stop`` is set (or the task is cancelled)."""
    default_host, default_port = default_address(settings)
    server = SchemaRegistryServer(
        settings, host or default_host, default_port if port is None else port
    )
    await server.start()
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop()
