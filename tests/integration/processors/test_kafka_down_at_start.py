"""A worker started while Kafka is unreachable waits for it (saying why), then processes.

Faust's start-up does not survive a broker that does not answer; the worker must not exit when
it is started during an outage or a leader election (no supervisor restarts it on a laptop).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from robostream.config import Settings
from robostream.topics import cluster_not_ready
from tests.conftest import free_port
from tests.integration.processors.harness import Worker, produce, telemetry


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            sock.close()


class KafkaDoor:
    """A loopback port that refuses connections until :meth:`open`, then forwards them to Kafka.

    Only the bootstrap goes through it: the brokers' metadata sends clients to the real ports.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.bootstrap = f"127.0.0.1:{free_port()}"
        self._server: socket.socket | None = None

    def open(self) -> None:
        host, port = self.bootstrap.rsplit(":", 1)
        self._server = socket.create_server((host, int(port)))
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.fixture
def door(settings: Settings) -> Iterator[KafkaDoor]:
    kafka_door = KafkaDoor(settings.kafka.bootstrap)
    yield kafka_door
    kafka_door.close()


def behind(settings: Settings, door: KafkaDoor) -> Settings:
    """``settings`` with Kafka's bootstrap through ``door``."""
    kafka = settings.kafka.model_copy(update={"bootstrap": door.bootstrap})
    return settings.model_copy(update={"kafka": kafka})


def test_cluster_not_ready_says_why_until_kafka_answers(settings: Settings, door: KafkaDoor) -> None:
    reason = cluster_not_ready(behind(settings, door), timeout=2)
    assert reason is not None and f"Kafka at {door.bootstrap} does not answer" in reason, reason
    door.open()
    assert cluster_not_ready(behind(settings, door)) is None


def test_a_worker_started_while_kafka_is_unreachable_waits_then_processes_everything(
    make_settings: Callable[..., Settings], workers: Callable[[Settings, str], Worker], door: KafkaDoor,
) -> None:
    real = make_settings()
    worker = workers(behind(real, door), "patient")
    deadline = time.monotonic() + 60
    while "waiting for Kafka" not in worker.tail() and time.monotonic() < deadline:
        assert worker.proc.poll() is None, f"the worker exited {worker.proc.returncode}:\n{worker.tail()}"
        time.sleep(0.3)
    assert f"waiting for Kafka: Kafka at {door.bootstrap} does not answer" in worker.tail(), worker.tail()
    time.sleep(2.0)
    assert worker.proc.poll() is None, f"the worker exited {worker.proc.returncode}:\n{worker.tail()}"
    assert worker.status() == {}, "no status before Kafka answers"

    door.open()
    produce(real, telemetry("robot_001", "s1", 1_800_000_000.0, 50))
    worker.wait_for(lambda s: s["totals"].get("telemetry_records", 0) >= 50)
