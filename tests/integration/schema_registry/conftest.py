"""Fixtures of the schema registry tests: real registries on a real broker, each test module on
its own ``_schemas_test_<uuid>`` topic.

The registry is asyncio; the tests use confluent-kafka's blocking clients, so each registry runs
on its own event loop in a background thread (:class:`RunningRegistry`).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from robostream.config import Settings
from robostream.schemas.registry import SchemaRegistryServer


class RunningRegistry:
    """A :class:`SchemaRegistryServer` served from a background thread's event loop."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server = SchemaRegistryServer(settings, topic=topic)
        self._call(self.server.start())

    def _call(self, coro: object, timeout: float = 90.0) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> SchemaRegistryClient:
        """A fresh confluent-kafka client (no cache shared with other tests)."""
        return SchemaRegistryClient({"url": self.url})

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self.server.stop(), timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


@pytest.fixture(scope="module")
def registry_settings(settings: Settings, kafka_bootstrap: str) -> Settings:
    """The session settings, pointed at the running test broker."""
    kafka = settings.kafka.model_copy(update={"bootstrap": kafka_bootstrap})
    return settings.model_copy(update={"kafka": kafka})


@pytest.fixture(scope="module")
def new_topic(kafka_bootstrap: str) -> Iterator[Callable[[], str]]:
    """Makes unique ``_schemas_test_<uuid>`` topic names; the topics are deleted afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(f"_schemas_test_{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    present = set(admin.list_topics(timeout=10).topics)
    doomed = [n for n in names if n in present]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()


@pytest.fixture
def start_registry(registry_settings: Settings) -> Iterator[Callable[[str], RunningRegistry]]:
    """Starts registries on a given topic; stops them all after the test."""
    started: list[RunningRegistry] = []

    def start(topic: str) -> RunningRegistry:
        started.append(RunningRegistry(registry_settings, topic))
        return started[-1]

    yield start
    for running in reversed(started):
        running.stop()


@pytest.fixture(scope="module")
def registry(registry_settings: Settings, new_topic: Callable[[], str]) -> Iterator[RunningRegistry]:
    """One registry shared by a test module, on the module's own topic."""
    running = RunningRegistry(registry_settings, new_topic())
    yield running
    running.stop()


@pytest.fixture
def client(registry: RunningRegistry) -> SchemaRegistryClient:
    return registry.client()


@pytest.fixture
def subject(unique: str) -> str:
    """A subject name no other test uses."""
    return f"robot.pose.{unique}-value"

