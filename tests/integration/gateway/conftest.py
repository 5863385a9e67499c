"""Fixtures of the gateway tests: real gateways (TLS, self-signed certificate) on the real test stack.

Each test module gets its own topic catalogue (prefix ``gw<uuid>``, deleted afterwards) and its
own gateway, served from a background thread's event loop so the tests can use blocking
clients (the WsRobot helper, confluent-kafka consumers) without stalling it.
"""

from __future__ import annotations

import os
import signal
import ssl
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from confluent_kafka.admin import AdminClient

from robostream.config import RobotSettings, Settings
from robostream.gateway import Gateway, hash_token
from robostream.stack import Stack
from robostream.topics import catalogue, create_topics
from tests.conftest import SessionEnd, free_port

from .clients import ROBOTS, LoopThread
from .tls import write_self_signed

T = TypeVar("T")


class RunningGateway:
    """A started :class:`Gateway` on a :class:`LoopThread`."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.thread = LoopThread()
        self.gateway = Gateway(settings, host="127.0.0.1", port=0, **kwargs)
        try:
            self.thread.call(self.gateway.start())
        except BaseException:
            self.thread.close()
            raise

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url

    @property
    def url(self) -> str:
        return self.gateway.url

    def stop(self) -> None:
        try:
            self.thread.call(self.gateway.stop())
        finally:
            self.thread.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost and its key."""
    return write_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def client_ssl(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """A client TLS context that trusts the test certificate (and nothing else)."""
    return ssl.create_default_context(cafile=str(tls_files[0]))


def gateway_settings(
    settings: Settings,
    kafka_bootstrap: str,
    registry_url: str,
    tls_files: tuple[Path, Path],
    prefix: str,
    **gateway: Any,
) -> Settings:
    """Test settings: own topic prefix (2 partitions), TLS, robots with tokens, ``gateway`` overrides."""
    cert, key = tls_files
    robots = [RobotSettings(id=robot, token_sha256=hash_token(token)) for robot, token in ROBOTS.items()]
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap": kafka_bootstrap}),
            "schema_registry": settings.schema_registry.model_copy(update={"url": registry_url}),
            "topics": settings.topics.model_copy(update={"prefix": prefix, "partitions": 2}),
            "s3": settings.s3.model_copy(update={"multipart_threshold_bytes": 5 * 1024 * 1024}),
            "robots": robots,
            "gateway": settings.gateway.model_copy(update={"tls_cert": cert, "tls_key": key, **gateway}),
        }
    )


@pytest.fixture(scope="module")
def make_catalogue(kafka_bootstrap: str) -> Iterator[Callable[[Settings], Settings]]:
    """Creates the topic catalogue of a settings' prefix; the topics are deleted after the module."""
    made: list[Settings] = []

    def make(mine: Settings) -> Settings:
        report = create_topics(mine)
        assert report.ok, [r.error for r in report.results if r.error]
        made.append(mine)
        return mine

    yield make
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    present = admin.list_topics(timeout=10).topics
    doomed = [
        spec.name
        for mine in made
        for spec in catalogue(mine)
        if spec.name in present and spec.name != mine.schema_registry.topic
    ]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()


@pytest.fixture(scope="module")
def gw_settings(
    settings: Settings,
    kafka_bootstrap: str,
    registry_url: str,
    tls_files: tuple[Path, Path],
    make_catalogue: Callable[[Settings], Settings],
) -> Settings:
    """This module's settings, its topic catalogue created."""
    prefix = f"gw{uuid.uuid4().hex[:10]}"
    return make_catalogue(gateway_settings(settings, kafka_bootstrap, registry_url, tls_files, prefix))


@pytest.fixture(scope="module")
def gateway(gw_settings: Settings) -> Iterator[RunningGateway]:
    """This module's gateway (TLS on, port chosen by the OS)."""
    running = RunningGateway(gw_settings)
    yield running
    running.stop()


# -- a broker the tests may freeze ------------------------------------------------------------------


class ThrowawayKafka:
    """A private Apache Kafka broker (the project's stack code, the cached jars) tests may SIGSTOP."""

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()
        self.settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{free_port()}"}),
                "stack": settings.stack.model_copy(
                    update={
                        "state_dir": self.state_dir,
                        "kafka_controller_port": free_port(),
                        "kafka_heap": "256m",
                    }
                ),
            }
        )
        self.settings.__dict__.pop("state_dir", None)  # model_copy keeps the original's cached state_dir
        self.stack = Stack(self.settings)
        assert self.stack.state_dir == self.state_dir, "would touch the shared test stack"
        self.pid = 0

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap

    def start(self) -> ThrowawayKafka:
        self.stack.up(["kafka"])
        record = self.stack.record("kafka")
        assert record is not None and str(self.state_dir) in " ".join(psutil.Process(record.pid).cmdline())
        self.pid = record.pid
        return self

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.stack.down(["kafka"])


_NEEDS_THROWAWAY = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_NEEDS_THROWAWAY] = any("test_gateway_stalled_kafka" in item.nodeid for item in items)


@pytest.fixture(scope="session", autouse=True)
def throwaway_kafka_starting(
    request: pytest.FixtureRequest,
    settings: Settings,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    session_end: SessionEnd,
) -> Iterator[Future[ThrowawayKafka] | None]:
    """Starts the throwaway broker in the background as soon as the gateway tests begin (the JVM
    takes a while); only when the backpressure tests are selected."""
    if not request.config.stash.get(_NEEDS_THROWAWAY, False):
        yield None
        return
    kafka = ThrowawayKafka(settings, tmp_path_factory.mktemp("stall-kafka"))
    with ThreadPoolExecutor(1, thread_name_prefix="throwaway-kafka") as pool:
        starting = pool.submit(kafka.start)
        try:
            yield starting
        finally:
            starting.exception()  # wait for the start to finish before stopping
            session_end.add(kafka.state_dir, kafka.stop)
