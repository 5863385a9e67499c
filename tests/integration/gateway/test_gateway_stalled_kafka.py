"""Kafka stalls -> the gateway stops reading sockets: in-flight bytes stay under the bound, robots
get ``slow_down`` and HTTP 429, and no ack comes until Kafka has the records again.

The stall is real: this module's gateway writes to a throwaway Apache Kafka broker (started from
the cached jars by the project's own stack code) that the test freezes with SIGSTOP and thaws
with SIGCONT.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import psutil
import pytest

from robostream.config import Settings
from robostream.schemas import DataType, encode_frame
from robostream.topics import create_topics

from .clients import ROBOTS, envelopes, http_ingest, session
from .conftest import RunningGateway, ThrowawayKafka, gateway_settings

FRAME_ENVELOPES = 100
PER_CONNECTION = 256 * 1024
TOTAL = 384 * 1024
ATTEMPT_BYTES = 256 * 1024 * 1024  # what each client tries to push during the stall


@pytest.fixture(scope="module")
def throwaway_kafka(throwaway_kafka_starting: Future[ThrowawayKafka] | None) -> Iterator[ThrowawayKafka]:
    """The private broker this module freezes (started early by the conftest)."""
    assert throwaway_kafka_starting is not None
    kafka = throwaway_kafka_starting.result(180)
    try:
        yield kafka
    finally:
        kafka.thaw()


@pytest.fixture(scope="module")
def bounded(
    settings: Settings, throwaway_kafka: ThrowawayKafka, registry_url: str, tls_files: tuple[Path, Path]
) -> Settings:
    mine = gateway_settings(
        settings,
        throwaway_kafka.bootstrap,
        registry_url,
        tls_files,
        f"gw{uuid.uuid4().hex[:10]}",
        max_frame_bytes=64 * 1024,
        max_inflight_bytes_per_connection=PER_CONNECTION,
        max_inflight_bytes=TOTAL,
        retry_after_ms=250,
        delivery_timeout_s=90,
    )
    assert create_topics(mine).ok
    return mine


@pytest.fixture(scope="module")
def gateway(bounded: Settings) -> Iterator[RunningGateway]:
    running = RunningGateway(bounded)
    yield running
    running.stop()


class PushingRobot:
    """A robot that sends the same frame as fast as its socket lets it, and records what comes back."""

    def __init__(self, url: str, token: str, client_ssl: ssl.SSLContext, frame: bytes) -> None:
        self.url, self.token, self.ssl, self.frame = url, token, client_ssl, frame
        self.sent = 0
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(
                self.url,
                headers=headers,
                ssl=self.ssl,
                max_msg_size=0,
            ) as ws,
        ):
            reader = asyncio.create_task(self._read(ws))
            while not self.stop.is_set() and self.sent * len(self.frame) < ATTEMPT_BYTES:
                await ws.send_bytes(self.frame)  # blocks while the gateway does not read: TCP pushes back
                self.sent += 1
            while self.acked() < self.sent:  # noqa: ASYNC110 (the reader task counts the acks)
                await asyncio.sleep(0.05)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            self.messages.append((time.monotonic(), msgpack.unpackb(msg.data)))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["type"] == kind]

    def acked(self) -> int:
        return len(self.of_type("ack"))


async def test_stalled_kafka_bounds_memory_and_slows_robots_down(
    gateway: RunningGateway, bounded: Settings, throwaway_kafka: ThrowawayKafka, client_ssl: ssl.SSLContext
) -> None:
    frames = {r: encode_frame(envelopes(r, session(), [DataType.LOG] * FRAME_ENVELOPES)) for r in ROBOTS}
    frame = frames["robot_a"]
    assert 8 * 1024 < len(frame) < 64 * 1024
    process = psutil.Process()
    metrics = gateway.gateway.metrics
    throwaway_kafka.freeze()
    robots = [PushingRobot(gateway.ws_url, ROBOTS[r], client_ssl, frames[r]) for r in ("robot_a", "robot_b")]
    try:
        rss_before = process.memory_info().rss
        tasks = [asyncio.create_task(r.run()) for r in robots]
        await asyncio.sleep(4)  # Kafka refuses every write meanwhile
        rss_stalled = process.memory_info().rss
        status, refusal, headers = await http_ingest(
            gateway.url, ROBOTS["robot_c"], [frames["robot_c"]], "msgpack", client_ssl
        )
        received = metrics.received_bytes.labels("ws")._value.get()
        acks_while_stalled = sum(r.acked() for r in robots)
    finally:
        throwaway_kafka.thaw()
    for robot in robots:
        robot.stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)

    budget = gateway.gateway.budget
    assert budget.peak <= TOTAL  # the bound held
    assert received <= TOTAL + 2 * len(frame)  # it stopped reading: frames stayed in the robots' sockets
    assert all(r.sent * len(frame) < ATTEMPT_BYTES for r in robots)  # the robots were held back
    assert rss_stalled - rss_before < 64 * 1024 * 1024
    assert acks_while_stalled == 0  # no ack before Kafka has the records
    slow = [m for r in robots for m in r.of_type("slow_down")]
    assert slow and slow[0]["retry_after_ms"] == 250 and slow[0]["limit_bytes"] in (PER_CONNECTION, TOTAL)
    assert status == 429 and refusal[0]["code"] == "overloaded" and headers["Retry-After"] == "1"
    for robot in robots:  # once Kafka takes writes again, every frame is acked, in order
        acks = robot.of_type("ack")
        assert [a["batch"] for a in acks] == list(range(1, robot.sent + 1))
        assert all(a["count"] == FRAME_ENVELOPES for a in acks)
        assert robot.of_type("nack") == []
    assert budget.used == 0
