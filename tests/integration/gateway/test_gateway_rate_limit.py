"""A robot over ``gateway.max_messages_per_s_per_robot`` gets retriable ``rate_limited`` nacks (with
``retry_after_ms``) on every one of its connections, WS and HTTP; other robots are not slowed down;
nothing of a refused batch reaches Kafka or the DLQ; after the hint the same batch is accepted.

The limit is 1 message/s with a burst of 10: a robot that just sent 10 envelopes has to wait
~10 s for 10 more, so "sent right after" never depends on how fast the test machine is.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from robostream.config import RobotSettings, Settings
from robostream.gateway import hash_token
from robostream.schemas import DataType, Envelope, encode_frame
from robostream.schemas.examples import example_payload
from robostream.topics import dlq_topic, topic_for
from robostream_sdk import ClientOptions, SyncRobotClient

from .clients import ROBOTS, WsRobot, envelopes, headers_of, http_ingest, read_topics, session, with_session
from .conftest import RunningGateway

RATE = 1.0
BURST = 10
SDK_ROBOT, SDK_TOKEN = "robot_sdk", "token-sdk-0123456789"


@pytest.fixture(scope="module")
def limited(gw_settings: Settings) -> Settings:
    gateway = gw_settings.gateway.model_copy(
        update={"max_messages_per_s_per_robot": RATE, "rate_burst_messages": BURST}
    )
    robots = [*gw_settings.robots, RobotSettings(id=SDK_ROBOT, token_sha256=hash_token(SDK_TOKEN))]
    return gw_settings.model_copy(update={"gateway": gateway, "robots": robots})


@pytest.fixture(scope="module")
def gateway(limited: Settings) -> Iterator[RunningGateway]:
    running = RunningGateway(limited)
    yield running
    running.stop()


def logs(robot_id: str, session_id: str, count: int = BURST, first_seq: int = 0) -> list[Envelope]:
    return envelopes(robot_id, session_id, [DataType.LOG] * count, first_seq)


def assert_rate_limited(nacks: list[dict[str, Any]], ack: dict[str, Any], robot_id: str) -> int:
    """The one whole-frame nack of a rate-limited batch; returns its retry hint (ms)."""
    assert ack["count"] == 0 and ack["rejected"] == 1 and ack["seq"] is None
    [nack] = [m for m in nacks if m["type"] == "nack"]
    assert nack["code"] == "rate_limited" and nack["index"] is None and nack["batch"] == ack["batch"]
    assert nack["retriable"] is True and nack["dlq"] is False
    retry_ms = nack["retry_after_ms"]
    assert isinstance(retry_ms, int) and 0 < retry_ms <= BURST / RATE * 1000
    assert nack["message"].startswith(
        f"robot {robot_id} is over its rate limit of {RATE:g} messages/s; retry in {retry_ms} ms"
    )
    return retry_ms


def records_of(settings: Settings, session_id: str, count: int) -> list[Message]:
    """The log-topic records of a session (waits for ``count`` of them)."""
    mine = with_session(session_id)
    got = read_topics(settings.kafka.bootstrap, topic_for(DataType.LOG, settings),
                      lambda records: sum(map(mine, records)) >= count)
    return [m for m in got if mine(m)]


def metric(gateway: RunningGateway, name: str, **labels: str) -> float:
    value = gateway.gateway.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_a_robot_over_its_rate_is_nacked_on_every_connection_until_it_waits(
    gateway: RunningGateway, limited: Settings, client_ssl: ssl.SSLContext
) -> None:
    sid, other_sid = session(), session()
    first, second = logs("robot_a", sid), logs("robot_a", sid, first_seq=BURST)
    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    other = WsRobot(gateway.ws_url, ROBOTS["robot_b"], client_ssl)
    try:
        robot.send_batch(first)
        ack, nacks = robot.ack()
        assert (ack["count"], nacks) == (BURST, [])  # the burst is there at once

        robot.send_batch(second)
        ack, nacks = robot.ack()
        retry_ms = assert_rate_limited(nacks, ack, "robot_a")

        # The bucket is the robot's, not the connection's: a second connection is limited too ...
        again = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
        try:
            again.send_batch(second)
            ack, nacks = again.ack()
            assert_rate_limited(nacks, ack, "robot_a")
        finally:
            again.close()

        # ... while another robot sends its full burst meanwhile.
        other.send_batch(logs("robot_b", other_sid))
        ack, nacks = other.ack()
        assert (ack["count"], ack["rejected"], nacks) == (BURST, 0, [])

        # After the hint, the same batch (as the SDK resends it) is accepted.
        deadline = time.monotonic() + 60
        while True:
            time.sleep(retry_ms / 1000)
            robot.send_batch(second)
            ack, nacks = robot.ack()
            if ack["count"] == BURST:
                break
            retry_ms = assert_rate_limited(nacks, ack, "robot_a")
            assert time.monotonic() < deadline, "still rate limited after 60 s"
        assert ack["seq"] == 2 * BURST - 1 and nacks == []
    finally:
        robot.close()
        other.close()

    # Kafka has every envelope exactly once: the refused attempts produced nothing.
    seqs = Counter(int(headers_of(m)["seq"]) for m in records_of(limited, sid, 2 * BURST))
    assert seqs == Counter(range(2 * BURST))
    assert metric(gateway, "robostream_gateway_rate_limited_total", robot="robot_a", transport="ws") >= 2
    assert metric(gateway, "robostream_gateway_rate_limited_total", robot="robot_b", transport="ws") == 0
    assert metric(gateway, "robostream_gateway_dlq_records_total", code="rate_limited") == 0
    dlq = read_topics(limited.kafka.bootstrap, dlq_topic(limited),
                      lambda got: any(headers_of(m).get("__error.code") == "rate_limited" for m in got),
                      timeout=3)
    assert not [m for m in dlq if headers_of(m).get("__error.code") == "rate_limited"]


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_http_ingest_gets_the_same_nack_in_its_ack_stream(
    gateway: RunningGateway, client_ssl: ssl.SSLContext, fmt: str
) -> None:
    robot = "robot_c"
    sid = session()
    frames = [encode_frame(logs(robot, sid, first_seq=k * BURST), fmt) for k in range(3)]  # type: ignore[arg-type]
    status, messages, _ = asyncio.run(http_ingest(gateway.url, ROBOTS[robot], frames, fmt, client_ssl))
    assert status == 200
    acks = [m for m in messages if m["type"] == "ack"]
    assert [a["batch"] for a in acks] == [1, 2, 3]  # the stream goes on after a rate-limited batch
    limited = [a for a in acks if a["count"] == 0]
    assert limited, messages  # 30 envelopes at once: at most the first 10 fit
    for ack in limited:
        nacks = [m for m in messages if m["type"] == "nack" and m["batch"] == ack["batch"]]
        assert_rate_limited(nacks, ack, robot)
    assert metric(gateway, "robostream_gateway_rate_limited_total", robot=robot, transport="http") >= 1


def test_the_robot_sdk_waits_the_hint_and_resends(
    gateway: RunningGateway, limited: Settings, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    total = BURST + 5  # the last 5 wait ~5 s for their tokens
    options = ClientOptions(spool_dir=tmp_path, ssl_context=client_ssl, max_messages=5, backoff_max_s=0.5)
    with SyncRobotClient(gateway.url, SDK_ROBOT, token=SDK_TOKEN, options=options) as client:
        sid = client.start_session()
        for _ in range(total):
            client.send("log", example_payload("log"))
        assert client.flush(timeout_s=90)
        counters = client.counters
    assert counters.acked == total and counters.rejected == 0 and counters.lost == 0
    assert counters.resent >= 5  # it was rate limited and sent those again
    seqs = Counter(int(headers_of(m)["seq"]) for m in records_of(limited, sid, total))
    assert seqs == Counter(range(total))
    # It waited for the hint instead of resending in a loop.
    nacked = metric(gateway, "robostream_gateway_rate_limited_total", robot=SDK_ROBOT, transport="ws")
    assert 1 <= nacked < 10
