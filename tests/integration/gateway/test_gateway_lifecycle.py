"""Start-up refuses clearly; shutdown stops accepting, acks what Kafka took and closes with a reason."""

from __future__ import annotations

import asyncio
import ssl
import time

import aiohttp
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from robostream.config import Settings
from robostream.gateway import Gateway, GatewayStartError
from robostream.schemas import ConfluentSchemaResolver, DataType
from robostream.topics import topic_for

from .clients import ROBOTS, ClosedError, WsRobot, envelopes, headers_of, read_topics, session, with_session
from .conftest import RunningGateway


def test_graceful_shutdown_acks_what_is_durable_and_closes_with_a_reason(
    gw_settings: Settings, client_ssl: ssl.SSLContext
) -> None:
    running = RunningGateway(gw_settings)
    session_id = session()
    robot = WsRobot(running.ws_url, ROBOTS["robot_a"], client_ssl)
    stopped = None
    try:
        for batch in range(5):
            robot.send_batch(envelopes("robot_a", session_id, [DataType.LOG] * 20, first_seq=batch * 20))
        first, _ = robot.ack()
        _wait_until_read(running, batches=5)  # the gateway has every batch; now it is told to stop
        stopped = asyncio.run_coroutine_threadsafe(running.gateway.stop(), running.thread.loop)
        acks = [first] + [robot.ack()[0] for _ in range(4)]
        with pytest.raises(ClosedError) as closed:
            robot.recv(timeout=30)
        stopped.result(30)
    finally:
        robot.close()
        running.thread.close()

    assert [a["seq"] for a in acks] == [19, 39, 59, 79, 99]
    assert (closed.value.code, closed.value.reason) == (1001, "gateway shutting down")
    mine = with_session(session_id)
    records = read_topics(
        gw_settings.kafka.bootstrap,
        topic_for(DataType.LOG, gw_settings),
        lambda got: sum(map(mine, got)) >= 100,
    )
    assert {int(headers_of(m)["seq"]) for m in records if mine(m)} == set(range(100))
    with pytest.raises(aiohttp.ClientConnectorError):  # no longer accepting
        WsRobot(running.ws_url, ROBOTS["robot_a"], client_ssl)


def _wait_until_read(running: RunningGateway, batches: int, timeout: float = 30.0) -> None:
    """Wait until the gateway has read ``batches`` frames off its sockets (its frames counter)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        read = running.gateway.metrics.registry.get_sample_value(
            "robostream_gateway_frames_total", {"transport": "ws", "format": "msgpack"})
        if (read or 0) >= batches:
            return
        time.sleep(0.02)
    raise AssertionError(f"the gateway read {read} of {batches} batches in {timeout:.0f}s")


def test_start_fails_clearly_without_the_topics(gw_settings: Settings) -> None:
    bare = gw_settings.model_copy(
        update={"topics": gw_settings.topics.model_copy(update={"prefix": "nothere"})}
    )
    with pytest.raises(GatewayStartError, match=r"topic\(s\) missing.*robostream topics create"):
        asyncio.run(Gateway(bare, port=0).start())


def test_start_fails_clearly_without_the_schema_registry(gw_settings: Settings) -> None:
    url = "http://127.0.0.1:9"
    no_registry = gw_settings.model_copy(
        update={"schema_registry": gw_settings.schema_registry.model_copy(update={"url": url})}
    )
    resolver = ConfluentSchemaResolver(SchemaRegistryClient({"url": url, "max.retries": 0}))  # fail fast
    with pytest.raises(GatewayStartError, match=f"schema registry at {url} did not answer"):
        asyncio.run(Gateway(no_registry, port=0, resolver=resolver).start())
