"""A poison record lands on the DLQ with Kafka Connect's context headers; the task goes on.
Pause and resume through the REST API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from robostream.config import Settings
from robostream.processors import DerivedCodec, MetricStats, WindowStats
from robostream.schemas import ConfluentSchemaResolver, encode_record
from robostream.topics import StatsResolution, dlq_topic, stats_topic, topic_for
from tests.integration.sinks.helpers import (
    SAMPLES_PER_RECORD,
    points_in_mongo,
    produce,
    produce_raw,
    rest,
    running_worker,
    telemetry,
    wait_until,
)


def read_dlq(settings: Settings, expected: int, timeout: float = 30) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "dlq-reader",
                         "enable.auto.commit": False})
    topic = dlq_topic(settings)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topics.partitions)])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        found += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
    consumer.close()
    return found


@pytest.fixture(scope="module")
def dlq_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings({"kind": "mongo", "topics": ["time_series", "derived.stats_1m"],
                          "batch_size": 50, "flush_interval_ms": 100})


def test_poison_records_go_to_the_dlq_with_context_headers_and_the_task_goes_on(
    dlq_settings: Settings, resolver: ConfluentSchemaResolver, mongo: Any, tag: str,
) -> None:
    settings = dlq_settings
    session = f"dlq-{tag}"
    db = mongo[settings.mongo.database]
    records = list(telemetry(session, 40))
    good = encode_record(records[0], resolver, topic_prefix=settings.topics.prefix)
    time_series = topic_for("time_series", settings)
    bad_stats = WindowStats("robot_001", session, StatsResolution.MINUTE, 0, 60_000_000,
                            [MetricStats("pose:x", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0)])
    stats_value = DerivedCodec(resolver).encode(stats_topic("1m", settings), bad_stats)
    with running_worker(settings) as worker:
        produce(settings, resolver, records[:20])
        produce_raw(settings, time_series, b"\x00\x00\x00\x00\x01garbage", b"robot_001/" + session.encode(),
                    [("data_type", b"time_series")])                       # a value that is not Avro
        produce_raw(settings, time_series, good.value, b"robot_002/elsewhere")  # key != value's ids
        produce_raw(settings, stats_topic("1m", settings), stats_value,
                    f"robot_001/{session}".encode())                      # unsafe metric name
        produce(settings, resolver, records[20:])
        wait_until(lambda: points_in_mongo(db, session) == 40 * SAMPLES_PER_RECORD, 60,
                   "the good records around the poison ones")
        status = rest(worker.rest.url if worker.rest else "", f"/connectors/mongo-{tag}/status")
    dlq = sorted(read_dlq(settings, 3), key=lambda m: m.topic() + str(m.offset()))
    assert len(dlq) == 3
    headers = [dict(m.headers()) for m in dlq]
    stats_copy = next(h for h, m in zip(headers, dlq, strict=True)
                      if h["__connect.errors.topic"].endswith(b"stats_1m"))
    assert stats_copy["__connect.errors.stage"] == b"TASK_PUT"
    assert b"invalid metric 'pose:x'" in stats_copy["__connect.errors.exception.message"]
    garbage = next(m for m in dlq if m.value().endswith(b"garbage"))
    gh = dict(garbage.headers())
    assert gh["data_type"] == b"time_series"  # the original headers travel with the copy
    assert gh["__connect.errors.topic"] == time_series.encode()
    assert int(gh["__connect.errors.offset"]) == 20
    assert gh["__connect.errors.partition"] == str(garbage.partition()).encode()  # same key
    assert gh["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert gh["__connect.errors.connector.name"] == f"mongo-{tag}".encode()
    assert gh["__connect.errors.exception.class.name"].endswith(b"ValidationError")
    assert gh["__connect.errors.exception.stacktrace"].startswith(b"Traceback")
    task = status["tasks"][0]
    assert task["state"] == "RUNNING" and task["metrics"]["records_failed"] == 3


def test_pause_and_resume_through_the_rest_api(
    dlq_settings: Settings, resolver: ConfluentSchemaResolver, mongo: Any, tag: str,
) -> None:
    settings = dlq_settings
    name = f"mongo-{tag}"
    session = f"pause-{tag}"
    db = mongo[settings.mongo.database]
    with running_worker(settings) as worker:
        url = worker.rest.url if worker.rest else ""
        assert rest(url, "/connectors") == [name]
        wait_until(lambda: rest(url, f"/connectors/{name}/status")["tasks"][0]["state"] == "RUNNING",
                   30, "RUNNING")
        assert rest(url, f"/connectors/{name}/pause", "PUT") == 202
        wait_until(lambda: rest(url, f"/connectors/{name}/status")["connector"]["state"] == "PAUSED",
                   30, "PAUSED")
        produce(settings, resolver, telemetry(session, 10))
        time.sleep(2)
        assert points_in_mongo(db, session) == 0
        assert rest(url, f"/connectors/{name}/status")["tasks"][0]["paused_reason"] == "user"
        assert rest(url, f"/connectors/{name}/resume", "PUT") == 202
        wait_until(lambda: points_in_mongo(db, session) == 100, 30, "the records held while paused")
        assert rest(url, f"/connectors/{name}/status")["connector"]["state"] == "RUNNING"
