"""Story helpers of the replay tests: record a session into Kafka, read topics back."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from robostream.config import Settings
from robostream.schemas import (
    DataType,
    Envelope,
    SchemaIdResolver,
    build_envelope,
    decode_record,
    encode_record,
)
from robostream.schemas.examples import example_payload
from robostream.topics import topic_for

ROBOT = "robot_001"
ROOT = Path(__file__).resolve().parents[3]
TINY_JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


def recorded_session(session: str, start_s: float, *, telemetry: int = 50, logs: int = 5,
                     images: int = 3, step_s: float = 0.1) -> list[Envelope]:
    """A session as a robot records it: 10 Hz telemetry records, a few logs and JPEG frames
    spread over ``telemetry * step_s`` seconds, one seq counter (as the SDK numbers them)."""
    events: list[tuple[float, DataType, dict[str, Any]]] = []
    events += [(start_s + i * step_s, DataType.TIME_SERIES, example_payload(DataType.TIME_SERIES))
               for i in range(telemetry)]
    span = telemetry * step_s
    for i in range(logs):
        payload = {**example_payload(DataType.LOG), "message": f"log {i}"}
        events.append((start_s + (i + 0.5) * span / logs, DataType.LOG, payload))
    for i in range(images):
        payload = example_payload(DataType.IMAGES)
        payload["blob"] = {"format": "jpeg", "content": TINY_JPEG + bytes([i])}
        events.append((start_s + (i + 0.25) * span / images, DataType.IMAGES, payload))
    events.sort(key=lambda e: e[0])
    return [build_envelope(dt, payload, robot_id=ROBOT, session_id=session, seq=seq, timestamp=ts)
            for seq, (ts, dt, payload) in enumerate(events)]


def produce(settings: Settings, resolver: SchemaIdResolver, envelopes: Iterable[Envelope]) -> int:
    """Write envelopes to their data type topics as the gateway does (key robot/session)."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    count = 0
    for envelope in envelopes:
        record = encode_record(envelope, resolver, topic_prefix=settings.topics.prefix)
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        producer.produce(topic_for(envelope.data_type, settings), record.value, record.key,
                         headers=headers)
        count += 1
    assert producer.flush(30) == 0
    return count


def read_topics(settings: Settings, topics: list[str], timeout: float = 30.0) -> list[Any]:
    """Every record of ``topics`` (all partitions, from the start to the current end)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "rp-reader",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    metadata = consumer.list_topics(timeout=10)
    assignment = [TopicPartition(t, p, 0) for t in topics for p in metadata.topics[t].partitions]
    ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in assignment}
    waiting = {key for key, end in ends.items() if end > 0}
    consumer.assign(assignment)
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for message in consumer.consume(500, timeout=0.5):
            key = (message.topic() or "", message.partition() or 0)
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                waiting.discard(key)
                continue
            records.append(message)
            if (message.offset() or 0) + 1 >= ends[key]:
                waiting.discard(key)
    consumer.close()
    assert not waiting, f"timed out reading {sorted(waiting)}"
    return records


def decoded(messages: list[Any], resolver: SchemaIdResolver) -> list[Envelope]:
    return [decode_record(m.value(), resolver, key=m.key()) for m in messages]


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment of a ``python -m robostream.cli.<module>`` run with these settings."""
    env = dict(os.environ)
    env.update({
        "ROBOSTREAM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "ROBOSTREAM_TOPICS__PREFIX": settings.topics.prefix,
        "ROBOSTREAM_TOPICS__PARTITIONS": str(settings.topics.partitions),
        "ROBOSTREAM_SCHEMA_REGISTRY__URL": settings.schema_registry.url,
        "ROBOSTREAM_STACK__STATE_DIR": str(settings.stack.state_dir),
        "COLUMNS": "200",
    })
    return env


def cli(module: str, *args: str) -> list[str]:
    """The command line of one of robostream's CLI modules."""
    return [sys.executable, "-m", f"robostream.cli.{module}", *args]
