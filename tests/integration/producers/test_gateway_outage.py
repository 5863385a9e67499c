"""The simulator through a real gateway into Kafka: it rides out a 5-second gateway outage (every
seq arrives; duplicates allowed, gaps never), keeps its rates, and answers RPC requests."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import msgpack
from confluent_kafka import Producer

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, decode_value, encode_value
from robostream.schemas.catalog import subject_name
from robostream.simulator import SimulatedRobot, SimulationOptions, run_simulation
from robostream.topics import rpc_requests_topic, rpc_responses_topic

from .conftest import TOKENS, GatewayRunner, landed

DURATION_S = 16.0


def options_for(settings: Settings, gateway: GatewayRunner, tmp: Any, **overrides: Any) -> SimulationOptions:
    base: dict[str, Any] = {"robots": 2, "duration_s": DURATION_S, "media": True, "resolution": "320x180"}
    base.update(overrides)
    return SimulationOptions.from_settings(
        settings, gateway_url=gateway.url, spool_dir=tmp, tokens=TOKENS, progress=False,
        backoff_max_s=1.0, **base,
    )


def test_a_gateway_outage_loses_nothing(sd_settings: Settings, gateway: GatewayRunner, tmp_path: Any) -> None:
    options = options_for(sd_settings, gateway, tmp_path)
    outage: dict[str, float] = {}

    def take_the_gateway_down() -> None:
        time.sleep(5)
        outage["stopped"] = time.monotonic()
        gateway.stop()
        time.sleep(5)
        gateway.start()
        outage["started"] = time.monotonic()

    chaos = threading.Thread(target=take_the_gateway_down)
    chaos.start()
    report = asyncio.run(run_simulation(options))
    chaos.join()

    assert outage["started"] - outage["stopped"] >= 5
    for robot in report.robots:
        c = robot.counters
        assert c["lost"] == 0 and c["dropped"] == 0 and c["rejected"] == 0, c
        assert c["acked"] == c["created"] and c["spooled"] == 0, c
        assert c["connects"] >= 2 and c["disconnects"] >= 1, c  # it reconnected
        assert robot.stats is not None and robot.stats.drained

    kafka = landed(sd_settings, decode_telemetry=True)
    for robot in report.robots:
        key = f"{robot.robot_id}/{robot.session_id}"
        assert robot.stats is not None
        assert kafka.missing(key, robot.stats.last_seq) == [], "gaps in the seqs that reached Kafka"
        assert max(kafka.seqs[key]) == robot.stats.last_seq
        # rates, as Kafka has them: within ±5 % of config over the run
        rows = kafka.rows[key]
        for stream, rate in (("pose", 100), ("joints", 100), ("imu", 100), ("force_torque", 30)):
            assert abs(rows[stream] - rate * DURATION_S) <= 0.05 * rate * DURATION_S, (stream, rows[stream])
    prefix = sd_settings.topics.prefix
    images = sum(r.envelopes["images"] for r in report.robots)
    assert images >= 3 * 30 and kafka.per_topic[f"{prefix}.images"] >= images  # a camera burst at 3 s
    some = ("log", "parameters", "csv", "toml", "safetensors", "msgpack")
    assert {f"{prefix}.{t}" for t in some} <= set(kafka.per_topic)


def test_the_robot_answers_rpc(sd_settings: Settings, gateway: GatewayRunner, tmp_path: Any) -> None:
    options = options_for(sd_settings, gateway, tmp_path, robots=1, duration_s=8.0, media=False)
    resolver = ConfluentSchemaResolver(sd_settings.schema_registry.url)
    producer = Producer({"bootstrap.servers": sd_settings.kafka.bootstrap, "acks": "all"})
    calls: dict[str, str] = {}

    def ask(robots: list[SimulatedRobot]) -> asyncio.Task[None]:
        async def later() -> None:
            await asyncio.sleep(2.5)
            asks: list[tuple[str, dict[str, Any]]] = [
                ("set_parameter", {"name": "speed_scale", "value": 0.5}), ("get_status", {})]
            for method, params in asks:
                calls[method] = await asyncio.to_thread(_request, sd_settings, resolver, producer, method,
                                                        params)

        return asyncio.create_task(later())

    report = asyncio.run(run_simulation(options, on_start=ask))
    assert report.robots[0].counters["rpc_requests"] == 2
    responses = _responses(sd_settings, resolver, set(calls.values()))
    assert responses[calls["set_parameter"]]["status"] == "ok"
    assert msgpack.unpackb(responses[calls["set_parameter"]]["result"])["previous"] == 1.0
    status = msgpack.unpackb(responses[calls["get_status"]]["result"])
    assert status["robot_id"] == "robot_001" and status["counters"]["created"] > 0


def _request(settings: Settings, resolver: ConfluentSchemaResolver, producer: Producer, method: str,
             params: dict[str, Any]) -> str:
    correlation_id = uuid.uuid4().hex
    topic = rpc_requests_topic(settings)
    datum = {"timestamp": time.time_ns() // 1000, "robot_id": "robot_001", "session_id": None,
             "kind": "request", "correlation_id": correlation_id, "method": method,
             "params": msgpack.packb(params), "deadline": int((time.time() + 20) * 1_000_000)}
    producer.produce(topic, encode_value("rpc_event", datum, resolver, subject_name(topic)), b"robot_001")
    assert producer.flush(10) == 0
    return correlation_id


def _responses(settings: Settings, resolver: ConfluentSchemaResolver, wanted: set[str]) -> dict[str, Any]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = rpc_responses_topic(settings)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    found: dict[str, Any] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + 30
        while not wanted <= set(found) and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None:
                    _, datum = decode_value(msg.value() or b"", resolver)
                    found[datum["correlation_id"]] = datum
    finally:
        consumer.close()
    return found
