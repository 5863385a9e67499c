"""Stop SecantusDB for 10 s mid-stream: the connector shows PAUSED, then RUNNING; nothing lost.

This stops the shared test stack's MongoDB server for ~10 s (other tests using MongoDB at that
moment see it down too); it is the only test that does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver
from robostream.stack import Stack
from tests.integration.sinks.helpers import (
    SAMPLES_PER_RECORD,
    points_in_mongo,
    produce,
    producer,
    rest,
    running_worker,
    stored_samples,
    telemetry,
    wait_until,
)

RECORDS = 2000
OUTAGE_S = 10.0


def test_mongo_outage_pauses_the_connector_and_loses_nothing(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, mongo: Any,
    stack: Stack, tag: str,
) -> None:
    settings = make_settings({"kind": "mongo", "topics": ["time_series"], "batch_size": 100,
                              "errors_retry_delay_max_ms": 1000})
    name = f"mongo-{tag}"
    session = f"outage-{tag}"
    db = mongo[settings.mongo.database]
    records = list(telemetry(session, RECORDS))
    kafka = producer(settings)

    def stream() -> None:  # 20 s of data, the outage in the middle of it
        for start in range(0, RECORDS, 100):
            produce(settings, resolver, records[start:start + 100], kafka)
            time.sleep(1.0)

    states: list[str] = []
    with running_worker(settings) as worker:
        url = worker.rest.url if worker.rest else ""

        def task_state() -> str:
            task = rest(url, f"/connectors/{name}/status")["tasks"][0]
            states.append(task["state"] + ("/" + task["paused_reason"] if "paused_reason" in task else ""))
            return str(task["state"])

        feeder = threading.Thread(target=stream, daemon=True)
        feeder.start()
        wait_until(lambda: points_in_mongo(db, session) > 0, 60, "the first points")
        stack.down(["mongo"])
        down_at = time.monotonic()
        try:
            wait_until(lambda: task_state() == "PAUSED", OUTAGE_S, "the task to pause", 0.25)
            paused = rest(url, f"/connectors/{name}/status")["tasks"][0]
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        finally:
            stack.up(["mongo"])
        wait_until(lambda: task_state() == "RUNNING", 60, "the task to resume", 0.25)
        feeder.join(60)
        wait_until(lambda: points_in_mongo(db, session) == RECORDS * SAMPLES_PER_RECORD, 120,
                   "every point after the outage")

        def drained() -> dict[str, Any] | None:
            status: dict[str, Any] = rest(url, f"/connectors/{name}/status")
            return status if status["tasks"][0]["lag"]["total"] == 0 else None

        # the written offsets are committed beside the path, every offset_flush_interval_ms
        status = wait_until(drained, 30, "the lag to drain once the points landed")

    assert paused["paused_reason"] == "store_unavailable" and paused["retry"]["attempt"] >= 1
    assert "MongoDB" in paused["retry"]["last_error"]
    assert status["connector"]["state"] == "RUNNING" and status["tasks"][0]["lag"]["total"] == 0
    assert "PAUSED/store_unavailable" in states and states[-1] == "RUNNING"
    assert sorted({seq for seq, _ in stored_samples(db, session)}) == list(range(RECORDS))
