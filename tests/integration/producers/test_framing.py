"""The SDK's default framing through the real gateway: metadata-like envelopes as JSON text frames,
telemetry and binary ones as MessagePack, on one WebSocket, land in Kafka exactly as the same
stream sent all in MessagePack."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, DataType, decode_value
from robostream.schemas.examples import example_payload
from robostream.topics import topic_for
from robostream_sdk import ClientOptions, SyncRobotClient

from .conftest import TOKENS, GatewayRunner

T0 = 1_765_000_000.0


def mixed() -> list[tuple[str, dict[str, Any]]]:
    """Every data type three times, interleaved."""
    return [(str(dt), example_payload(dt)) for _ in range(3) for dt in DataType]


def stream(gateway: GatewayRunner, tmp_path: Path, fmt: str) -> str:
    options = ClientOptions(fmt=fmt, spool_dir=tmp_path / fmt, backoff_max_s=0.5)  # type: ignore[arg-type]
    with SyncRobotClient(gateway.url, "robot_003", token=TOKENS["robot_003"], options=options) as client:
        session = client.start_session()
        for i, (data_type, payload) in enumerate(mixed()):
            client.send(data_type, payload, timestamp=T0 + i / 100)
        stats = client.end_session()
    assert stats.drained and stats.records == len(mixed())
    return session


def records_of(settings: Settings, session: str) -> dict[int, tuple[str, dict[str, Any]]]:
    """The session's records in Kafka by seq: (data type, record without its session id)."""
    resolver = ConfluentSchemaResolver(settings.schema_registry.url)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap,
                         "group.id": f"fr-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    out: dict[int, tuple[str, dict[str, Any]]] = {}
    try:
        names = [topic_for(dt, settings) for dt in DataType]
        metadata = consumer.list_topics(timeout=10).topics
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING)
                         for name in names for p in metadata[name].partitions])
        deadline = time.monotonic() + 30
        while len(out) < len(mixed()) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is not None or not (msg.key() or b"").decode().endswith(f"/{session}"):
                    continue
                name, datum = decode_value(msg.value(), resolver)
                datum.pop("session_id", None)
                out[int(datum["seq"])] = (name, datum)
    finally:
        consumer.close()
    return out


def frames(gateway: GatewayRunner, fmt: str) -> float:
    assert gateway.gateway is not None
    value = gateway.gateway.metrics.registry.get_sample_value(
        "robostream_gateway_frames_total", {"transport": "ws", "format": fmt})
    return value or 0.0


def test_a_mixed_stream_lands_the_same_in_json_and_messagepack_frames(
        sd_settings: Settings, gateway: GatewayRunner, tmp_path: Path) -> None:
    before = {fmt: frames(gateway, fmt) for fmt in ("json", "msgpack")}
    auto = stream(gateway, tmp_path, "auto")
    after_auto = {fmt: frames(gateway, fmt) for fmt in ("json", "msgpack")}
    binary = stream(gateway, tmp_path, "msgpack")
    after_binary = {fmt: frames(gateway, fmt) for fmt in ("json", "msgpack")}

    assert after_auto["json"] > before["json"] and after_auto["msgpack"] > before["msgpack"]  # both kinds
    assert after_binary["json"] == after_auto["json"]  # the forced format sends no text frame

    landed_auto, landed_binary = records_of(sd_settings, auto), records_of(sd_settings, binary)
    assert sorted(landed_auto) == list(range(len(mixed())))
    assert {name for name, _ in landed_auto.values()} == {str(dt) for dt in DataType}
    assert landed_auto == landed_binary
