"""Every data type through the gateway (WS and HTTPS, MessagePack and JSON): acked only once the
records are in Kafka, where they decode back to what the robot sent."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from confluent_kafka import Message
from prometheus_client.parser import text_string_to_metric_families

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, DataType, Envelope, decode_record, encode_frame
from robostream.topics import topic_for

from .clients import (
    ROBOTS,
    EndOffsets,
    WsRobot,
    envelopes,
    header_list,
    headers_of,
    http_ingest,
    in_kafka_at,
    read_topics,
    session,
    value_of,
    with_session,
)
from .conftest import RunningGateway

ALL = list(DataType)


#: The producer's linger in :func:`lingering_gateway`: every delivery takes at least this long, so
#: an ack sent before delivery would arrive this long before its records are in Kafka.
LINGER_MS = 300


@pytest.fixture(scope="module")
def lingering_gateway(gw_settings: Settings) -> Iterator[RunningGateway]:
    """A gateway whose producer holds each record ``LINGER_MS`` before sending it to Kafka."""
    kafka = gw_settings.kafka.model_copy(update={"linger_ms": LINGER_MS})
    running = RunningGateway(gw_settings.model_copy(update={"kafka": kafka}))
    yield running
    running.stop()


def at_least(match: Callable[[Message], bool], count: int, records: list[Message]) -> bool:
    return sum(map(match, records)) >= count


def in_kafka(
    settings: Settings,
    registry_url: str,
    sent: list[Envelope],
    session_id: str,
    at_ack: dict[tuple[str, int], int] | None = None,
) -> list[Envelope]:
    """The records of ``session_id`` on every data type topic, decoded.

    With ``at_ack`` (the end offsets taken when the ack arrived), only the records that were
    already in Kafka then: a record written after the ack is left out.
    """
    topics = [topic_for(dt, settings) for dt in ALL]
    mine = with_session(session_id)
    records = read_topics(settings.kafka.bootstrap, topics, lambda got: sum(map(mine, got)) >= len(sent))
    resolver = ConfluentSchemaResolver(registry_url)
    found = []
    for msg in filter(mine, records):
        if at_ack is not None and not in_kafka_at(at_ack, msg):
            continue
        headers = headers_of(msg)
        envelope = decode_record(value_of(msg), resolver, key=msg.key(), headers=header_list(msg))
        assert headers["seq"] == str(envelope.seq)
        assert msg.topic() == topic_for(envelope.data_type, settings)
        found.append(envelope)
    return sorted(found, key=lambda e: e.seq)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_ws_batch_of_every_data_type_is_acked_after_kafka_has_it(
    lingering_gateway: RunningGateway,
    gw_settings: Settings,
    registry_url: str,
    client_ssl: ssl.SSLContext,
    fmt: str,
) -> None:
    session_id = session()
    sent = envelopes("robot_a", session_id, ALL)
    end_offsets = EndOffsets(gw_settings.kafka.bootstrap, [topic_for(dt, gw_settings) for dt in ALL])
    robot = WsRobot(lingering_gateway.ws_url, ROBOTS["robot_a"], client_ssl, fmt=fmt)
    next_message = robot.observe(end_offsets.snapshot)  # what Kafka holds as each message arrives
    try:
        robot.send_batch(sent)
        ack, at_ack = next_message(30)
    finally:
        robot.close()

    assert ack == {"type": "ack", "batch": 1, "seq": len(ALL) - 1, "count": len(ALL), "rejected": 0}
    assert in_kafka(gw_settings, registry_url, sent, session_id, at_ack) == sent


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_https_stream_of_batches_is_answered_by_a_stream_of_acks(
    lingering_gateway: RunningGateway,
    gw_settings: Settings,
    registry_url: str,
    client_ssl: ssl.SSLContext,
    fmt: str,
) -> None:
    session_id = session()
    sent = envelopes("robot_b", session_id, ALL)
    frames = [encode_frame(sent[:9], fmt), encode_frame(sent[9:], fmt)]  # type: ignore[arg-type]
    end_offsets = EndOffsets(gw_settings.kafka.bootstrap, [topic_for(dt, gw_settings) for dt in ALL])
    at_acks: list[dict[tuple[str, int], int]] = []

    status, messages, _ = asyncio.run(
        http_ingest(lingering_gateway.url, ROBOTS["robot_b"], frames, fmt, client_ssl, pause_s=0.05,
                    probe=end_offsets.snapshot, probed=at_acks)  # Kafka's end offsets as each ack arrives
    )

    assert status == 200
    assert messages == [
        {"type": "ack", "batch": 1, "seq": 8, "count": 9, "rejected": 0},
        {"type": "ack", "batch": 2, "seq": len(ALL) - 1, "count": len(ALL) - 9, "rejected": 0},
    ]
    assert in_kafka(gw_settings, registry_url, sent, session_id, at_acks[0])[:9] == sent[:9]
    assert in_kafka(gw_settings, registry_url, sent, session_id, at_acks[1]) == sent


def test_acks_come_in_batch_order_each_after_its_records_are_in_kafka(
    lingering_gateway: RunningGateway, gw_settings: Settings, client_ssl: ssl.SSLContext
) -> None:
    session_id = session()
    robot = WsRobot(lingering_gateway.ws_url, ROBOTS["robot_c"], client_ssl)
    topic = topic_for(DataType.LOG, gw_settings)
    mine = with_session(session_id)
    end_offsets = EndOffsets(gw_settings.kafka.bootstrap, [topic])
    next_message = robot.observe(end_offsets.snapshot)  # Kafka's end offsets as each message arrives
    try:
        for batch in range(3):
            robot.send_batch(envelopes("robot_c", session_id, [DataType.LOG] * 50, first_seq=batch * 50))
        acks = [next_message(30) for _ in range(3)]
    finally:
        robot.close()

    everything = read_topics(gw_settings.kafka.bootstrap, topic, partial(at_least, mine, 150))
    records = [m for m in everything if mine(m)]
    assert len(records) == 150
    for batch, (ack, at_ack) in enumerate(acks):
        assert ack == {"type": "ack", "batch": batch + 1, "seq": batch * 50 + 49, "count": 50, "rejected": 0}
        seqs_then = {int(headers_of(m)["seq"]) for m in records if in_kafka_at(at_ack, m)}
        assert set(range(ack["seq"] + 1)) <= seqs_then  # every acked seq was in Kafka at its ack


def test_healthz_and_metrics(gateway: RunningGateway, client_ssl: ssl.SSLContext) -> None:
    with urllib.request.urlopen(f"{gateway.url}/healthz", context=client_ssl, timeout=10) as resp:
        health = json.loads(resp.read())
    assert resp.status == 200
    assert health["status"] == "ok" and health["kafka"] == "up"
    assert health["in_flight_limit_bytes"] > 0

    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    try:
        robot.send_batch(envelopes("robot_a", session(), [DataType.PARAMETERS]))
        robot.ack()
    finally:
        robot.close()
    with urllib.request.urlopen(f"{gateway.url}/metrics", context=client_ssl, timeout=10) as resp:
        text = resp.read().decode()
    assert 'robostream_gateway_envelopes_accepted_total{data_type="parameters"}' in text
    assert "robostream_gateway_ack_latency_seconds_bucket" in text
    assert "robostream_gateway_inflight_bytes " in text
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["robostream_gateway_ingest_envelopes_total"] >= 1
    assert samples["robostream_gateway_loop_hold_seconds_count"] >= 1
    assert 0 < samples["robostream_gateway_ingest_seconds_sum"] < 10
