"""100,000 telemetry points land exactly once in MongoDB; the Redis ring keeps the last 1000.

A point is one sample of a time_series record (docs/sinks.md): 4,000 records of 25 samples
(250 ms of 100 Hz telemetry each; fewer, larger records keep this test quick on SecantusDB,
whose cost is mostly per document).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver
from robostream.sinks import keys
from tests.integration.sinks.helpers import (
    points_in_mongo,
    produce,
    rest,
    running_worker,
    stored_samples,
    telemetry,
    wait_until,
)

RECORDS = 4_000
SAMPLES = 25
POINTS = RECORDS * SAMPLES


def test_100k_points_land_exactly_once_and_the_ring_holds_the_last_1000(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, mongo: Any,
    redis_client: Any, tag: str,
) -> None:
    settings = make_settings(
        {"kind": "mongo", "topics": ["time_series"], "batch_size": 1000},
        {"kind": "redis", "topics": ["time_series"], "batch_size": 1000},
    )
    session = f"vol-{tag}"
    channel = keys.live_channels("robot_001", session, "time_series")[1]
    pubsub = redis_client.pubsub()
    pubsub.subscribe(channel)
    published: list[int] = []

    def listen() -> None:
        for message in pubsub.listen():
            if message["type"] == "message":
                published.append(len(orjson.loads(message["data"])["points"]))
                if sum(published) >= POINTS:
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    db = mongo[settings.mongo.database]
    records = list(telemetry(session, RECORDS, samples=SAMPLES))
    # One document per channel group and minute (docs/sinks.md).
    minutes = {(e.timestamp_us + t) // 60_000_000 for e in records for t in e.payload["t"]}
    with running_worker(settings) as worker:
        started = time.monotonic()
        produce(settings, resolver, records)
        wait_until(lambda: points_in_mongo(db, session) == POINTS, 240,
                   "100k points in MongoDB")
        mongo_s = time.monotonic() - started
        ring = keys.latest_key("robot_001", session)
        wait_until(lambda: redis_client.zcard(ring) == 1000
                   and orjson.loads(redis_client.zrange(ring, -1, -1)[0])["seq"] == RECORDS - 1,
                   60, "the ring to end with the last record")
        elapsed = time.monotonic() - started
        url = worker.rest.url if worker.rest else ""

        def drained() -> Any:  # offsets are committed beside the writes (offset_flush_interval_ms)
            status = rest(url, f"/connectors/mongo-{tag}/status")
            return status if status["tasks"][0]["lag"]["total"] == 0 else None

        status = wait_until(drained, 30, "the MongoDB task's offsets to be committed")
    listener.join(10)
    pubsub.close()

    groups = db.telemetry.distinct("group", {"session_id": session})
    assert sorted(groups) == ["channels", "force_torque", "imu", "joints", "metrics", "pose"]
    assert db.telemetry.count_documents({"session_id": session}) == len(minutes) * len(groups)
    samples = stored_samples(db, session)
    assert len(samples) == len(set(samples)) == POINTS and len({s for s, _ in samples}) == RECORDS
    members = [orjson.loads(m) for m in redis_client.zrange(ring, 0, -1)]
    assert [(m["seq"], m["i"]) for m in members] == [
        (seq, i) for seq in range(RECORDS - 40, RECORDS) for i in range(SAMPLES)]
    assert sum(published) == POINTS  # every point published once
    wait_until(lambda: (db.sessions.find_one({"_id": f"robot_001/{session}"}) or {}).get(
        "stats", {}).get("total_telemetry_points") == POINTS, 30,
        "the session's running stats to count every point once")
    doc = db.telemetry.find_one({"session_id": session, "group": "joints"}, sort=[("timestamp", 1)])
    assert doc["_id"] == f"robot_001/{session}/joints/{doc['timestamp_us']}"
    assert len(doc["values"]["joints"]["angle"]) == 7  # joints.angle.0 .. joints.angle.6
    assert len(doc["values"]["joints"]["angle"]["0"]) == 8 * doc["n"] == len(doc["t"])  # float64 / int64
    assert {"bucket_hour", "bucket_minute", "timestamp", "first_us", "last_us", "summary"} <= doc.keys()
    assert db.telemetry_lod.count_documents({"session_id": session, "group": "joints", "level": "1s"}) == len(
        minutes)  # the pyramid's 1 s level: a document per minute
    assert status["tasks"][0]["state"] == "RUNNING" and status["tasks"][0]["lag"]["total"] == 0
    index_keys = [list(ix["key"]) for ix in db.telemetry.list_indexes()]
    assert ["robot_id", "session_id", "timestamp"] in index_keys
    ttl = [ix for ix in db.telemetry.list_indexes() if "expireAfterSeconds" in ix]
    assert ttl and ttl[0]["expireAfterSeconds"] == settings.mongo.hot_retention_days * 86400
    print(f"100k points: MongoDB after {mongo_s:.1f}s, Redis after {elapsed:.1f}s")
