"""``GET /metrics`` on the sink worker's REST port: records written, failures and DLQ copies per
connector, consumer lag per group and partition, moving as records land."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver
from robostream.sinks.task import group_id
from robostream.topics import topic_for
from tests.integration.sinks.helpers import (
    SAMPLES_PER_RECORD,
    points_in_mongo,
    produce,
    produce_raw,
    running_worker,
    telemetry,
    wait_until,
)
from tests.prometheus import scrape


def test_the_sink_metrics_count_what_the_worker_writes(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, mongo: Any, tag: str,
) -> None:
    settings = make_settings({"kind": "mongo", "topics": ["time_series"], "batch_size": 50,
                              "flush_interval_ms": 100})
    name = f"mongo-{tag}"
    session = f"met-{tag}"
    db = mongo[settings.mongo.database]
    records = list(telemetry(session, 30))
    with running_worker(settings) as worker:
        assert worker.rest is not None
        url = worker.rest.url + "/metrics"
        before = scrape(url)
        assert before.value("robostream_sinks_records_written_total", connector=name) == 0
        produce(settings, resolver, records[:20])
        produce_raw(settings, topic_for("time_series", settings), b"\x00\x00\x00\x00\x01garbage",
                    f"robot_001/{session}".encode(), [("data_type", b"time_series")])
        produce(settings, resolver, records[20:])
        wait_until(lambda: points_in_mongo(db, session) == 30 * SAMPLES_PER_RECORD, 60, "the records")

        def settled() -> Any:
            now = scrape(url)
            lags = now.labels("robostream_sinks_consumer_lag")
            done = (now.value("robostream_sinks_records_written_total", connector=name) == 30
                    and len(lags) == settings.topics.partitions
                    and now.value("robostream_sinks_consumer_lag", connector=name) == 0)
            return now if done else None

        after = wait_until(settled, 30, "the counters and a drained lag")
    assert after.value("robostream_sinks_task_state", connector=name, state="RUNNING") == 1
    assert after.value("robostream_sinks_records_failed_total", connector=name) == 1
    assert after.value("robostream_sinks_dlq_records_total", connector=name) == 1
    assert after.value("robostream_sinks_batches_total", connector=name) >= 1
    lags = after.labels("robostream_sinks_consumer_lag")
    assert {lag["group"] for lag in lags} == {group_id(name)}
    assert {(lag["topic"], lag["partition"]) for lag in lags} == {
        (topic_for("time_series", settings), str(p)) for p in range(settings.topics.partitions)}
