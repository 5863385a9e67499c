"""Fixtures of the SDK and simulator tests: the real test stack, a topic catalogue of our own, and
gateways that can be stopped and started again on the same port (served from a background
thread's event loop, so the tests can run clients in their own loop or in subprocesses)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from robostream.config import RobotSettings, Settings
from robostream.gateway import Gateway, hash_token
from robostream.schemas import ConfluentSchemaResolver, decode_value
from robostream.schemas.datatypes import DataType
from robostream.topics import create_topics, topic_for
from tests.integration.conftest import delete_prefix_topics

T = TypeVar("T")

#: The robots of these tests and their tokens (config.yaml's robot ids, so the CLI finds them).
TOKENS = {"robot_001": "tok-sd-0001-abcdef", "robot_002": "tok-sd-0002-abcdef",
          "robot_003": "tok-sd-0003-abcdef"}


class LoopThread:
    """An event loop in a daemon thread; ``call`` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sd-gateway-loop", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self._cancel_leftovers(), timeout=15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        """Idle keep-alive handlers of a stopped server would otherwise outlive the loop."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class GatewayRunner:
    """A gateway that can be stopped and started again on the same port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.thread = LoopThread()
        self.port = 0
        self.gateway: Gateway | None = None
        self.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.gateway.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        gateway = Gateway(self.settings, host="127.0.0.1", port=self.port)
        self.thread.call(gateway.start())
        self.gateway, self.port = gateway, gateway.port

    def stop(self) -> None:
        if self.gateway is not None:
            self.thread.call(self.gateway.stop("test stops the gateway"))
            self.gateway = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.thread.close()


@pytest.fixture(scope="module")
def sd_settings(settings: Settings, kafka_bootstrap: str, registry_url: str) -> Iterator[Settings]:
    """This module's settings: its own topic prefix (2 partitions), robots with tokens."""
    prefix = "sd" + uuid.uuid4().hex[:10]
    mine = settings.model_copy(update={
        "schema_registry": settings.schema_registry.model_copy(update={"url": registry_url}),
        "topics": settings.topics.model_copy(update={"prefix": prefix, "partitions": 2}),
        "robots": [RobotSettings(id=robot, token_sha256=hash_token(token), cameras=["front"])
                   for robot, token in TOKENS.items()],
        "gateway": settings.gateway.model_copy(update={"shutdown_timeout_s": 10.0}),
    })
    report = create_topics(mine)
    assert report.ok, [r.error for r in report.results if r.error]
    yield mine
    delete_prefix_topics(kafka_bootstrap, mine)


@pytest.fixture(scope="module")
def gateway(sd_settings: Settings) -> Iterator[GatewayRunner]:
    runner = GatewayRunner(sd_settings)
    yield runner
    runner.close()


@dataclass
class Landed:
    """What reached Kafka: seqs per ``robot/session`` key, records per topic, telemetry rows."""

    seqs: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    per_topic: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rows: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def missing(self, key: str, last_seq: int | None = None) -> list[int]:
        present = set(self.seqs[key])
        top = max(present) if last_seq is None else last_seq
        return [s for s in range(top + 1) if s not in present]


def landed(settings: Settings, *, timeout: float = 60.0, decode_telemetry: bool = False) -> Landed:
    """Every record of the data topics of ``settings``' prefix, read to the end."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap,
                         "group.id": f"sd-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    resolver = ConfluentSchemaResolver(settings.schema_registry.url) if decode_telemetry else None
    out = Landed()
    try:
        names = [topic_for(dt, settings) for dt in DataType]
        metadata = consumer.list_topics(timeout=10).topics
        ends: dict[tuple[str, int], int] = {}
        for name in names:
            for p in metadata[name].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if high > low:
                    ends[(name, p)] = high
        consumer.assign([TopicPartition(n, p, OFFSET_BEGINNING) for n, p in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is not None:
                    continue
                _take(out, msg, resolver)
                where = (str(msg.topic()), int(msg.partition() or 0))
                if int(msg.offset() or 0) + 1 >= ends.get(where, 0):
                    ends.pop(where, None)
        assert not ends, f"could not read to the end of {sorted(ends)}"
        return out
    finally:
        consumer.close()


def _take(out: Landed, msg: Any, resolver: ConfluentSchemaResolver | None) -> None:
    key = (msg.key() or b"").decode()
    headers = {k: (v or b"").decode() for k, v in (msg.headers() or [])}
    out.seqs[key].append(int(headers["seq"]))
    out.per_topic[msg.topic()] += 1
    if resolver is not None and headers.get("data_type") == "time_series":
        _, datum = decode_value(msg.value(), resolver)
        payload = datum["payload"]
        for stream in ("pose", "joints", "imu", "force_torque", "metrics"):
            if payload.get(stream) is not None:
                out.rows[key][stream] += len(payload["t"])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text("".join(f"{robot}: {token}\n" for robot, token in TOKENS.items()))
    return path
