"""Faults while three robots stream: crashes, store outages, a broker restart. Nothing acked is lost.

Modelled on Kafka's transactions system test: count in = count out, no duplicates, order kept.
The servers are the reliability stack's (tests/reliability/stack.py), never the shared test stack.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import redis
from pymongo import MongoClient

from robostream.config import Settings
from tests.reliability.checks import (
    Landed,
    assert_exactly_once_in_order,
    fault_row,
    kafka_seqs,
    mongo_telemetry,
    redis_ring,
    s3_images,
    wait_landed,
)
from tests.reliability.report import FIGURES, FaultRow
from tests.reliability.sizes import ROWS_PER_ENVELOPE, SIZES
from tests.reliability.stack import ReliabilityStack
from tests.reliability.streaming import Streamer

ROWS = ROWS_PER_ENVELOPE
LAND_TIMEOUT_S = 600 if SIZES.crash_messages > 100_000 else 240


@pytest.fixture(scope="module")
def db(rel_stack: ReliabilityStack, rel_settings: Settings) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(rel_settings.mongo.uri)
    yield client[rel_settings.mongo.database]
    client.close()


def envelopes_per_robot(messages: int) -> int:
    """Envelopes each of the 3 robots sends so that together they send at least ``messages``."""
    return math.ceil(messages / ROWS / 3)


def landed_in_mongo(db: Any, streamer: Streamer) -> list[tuple[set[int], Landed]]:
    return [(run.acked_seqs, wait_landed(lambda run=run: mongo_telemetry(db, run), run.acked_seqs,
                                         LAND_TIMEOUT_S)) for run in streamer.runs]


def wait_images(s3: Any, bucket: str, run: Any, timeout_s: float) -> int:
    """Raw image objects of the run, once every acked image is there (or at the deadline: the
    caller asserts); the S3 sink may still be catching up on the outage's backlog."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = s3_images(s3, bucket, run)
        if found >= len(run.acked_images) or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


def assert_all_sent_acked(streamer: Streamer) -> None:
    for run in streamer.runs:
        assert run.rejected == 0, f"{run.robot_id}: {run.rejected} envelopes rejected"
        assert run.counters["lost"] == 0 and run.counters["dropped"] == 0, run.counters
        telemetry = run.sent_envelopes - len(run.image_seqs)
        assert len(run.acked_seqs) == telemetry, (
            f"{run.robot_id}: {len(run.acked_seqs)} of {telemetry} telemetry envelopes acked")


@pytest.mark.timeout(1200 if SIZES.crash_messages > 100_000 else 400)
def test_kill9_gateway_sinks_and_processors_lose_and_duplicate_nothing(
    rel_stack: ReliabilityStack, rel_settings: Settings, db: Any
) -> None:
    per_robot = envelopes_per_robot(SIZES.crash_messages)
    streamer = Streamer(rel_settings, per_robot, rate_per_robot=per_robot / 20).start()
    back: dict[str, float] = {}
    for fraction, service in ((0.15, "gateway"), (0.4, "sinks"), (0.65, "processors")):
        streamer.wait_sent(fraction)
        before = rel_stack.pid(service)
        rel_stack.kill9(service)
        back[service] = rel_stack.restart(service)
        assert rel_stack.pid(service) != before
    streamer.join(timeout_s=600)
    assert_all_sent_acked(streamer)

    results = landed_in_mongo(db, streamer)
    resent = sum(run.counters["resent"] for run in streamer.runs)
    note = (f"kill -9 gateway at 15 %, sink worker at 40 %, processor worker at 65 % of the stream; "
            f"restarted and healthy in {back['gateway']:.0f}/{back['sinks']:.0f}/{back['processors']:.0f} s; "
            f"SDK resent {resent:,} messages")
    row = fault_row("kill -9 gateway, sinks, processors", streamer, results, note, sum(back.values()))
    FIGURES.faults.append(row)
    assert_exactly_once_in_order(row, results)
    keys = {f"{run.robot_id}/{run.session_id}" for run in streamer.runs}
    in_kafka = kafka_seqs(rel_settings, "time_series", keys)
    assert all(in_kafka.first_order_violations(key) == 0 for key in keys), "Kafka order broken"


@pytest.mark.timeout(900 if SIZES.outage_s > 10 else 400)
def test_store_outages_pause_the_sinks_and_lose_nothing(
    rel_stack: ReliabilityStack, rel_settings: Settings, db: Any
) -> None:
    per_robot = envelopes_per_robot(SIZES.outage_messages)
    duration = 3 * (SIZES.outage_s + 5)
    streamer = Streamer(rel_settings, per_robot, rate_per_robot=per_robot / duration,
                        image_every=10).start()
    down: dict[str, float] = {}
    for fraction, server in ((0.1, "mongo"), (0.4, "s3"), (0.7, "redis")):
        streamer.wait_sent(fraction)
        down[server] = rel_stack.outage(server, SIZES.outage_s)
    streamer.join(timeout_s=600)
    assert_all_sent_acked(streamer)

    mongo = landed_in_mongo(db, streamer)
    cache = redis.Redis.from_url(rel_settings.redis.url)
    ring = [(run.acked_seqs, wait_landed(lambda run=run: redis_ring(cache, run), run.acked_seqs, 120))
            for run in streamer.runs]
    s3 = boto3.client("s3", endpoint_url=rel_settings.s3.endpoint, region_name=rel_settings.s3.region,
                      aws_access_key_id=rel_settings.s3.access_key,
                      aws_secret_access_key=rel_settings.s3.secret_key.get_secret_value())
    images = [(run, wait_images(s3, rel_settings.s3.bucket, run, 120)) for run in streamer.runs]

    rows = [
        fault_row(f"SecantusDB (MongoDB) stopped {down['mongo']:.0f} s", streamer, mongo,
                  "landed = points in MongoDB telemetry", down["mongo"]),
        fault_row(f"Redis stopped {down['redis']:.0f} s", streamer, ring,
                  "landed = points in the Redis ring telemetry:{robot}:{session}:latest", down["redis"]),
    ]
    acked_images = sum(len(run.acked_images) for run, _ in images)
    landed_images = sum(min(n, len(run.acked_images)) for run, n in images)
    rows.insert(1, FaultRow(
        fault=f"SeaweedFS (S3) stopped {down['s3']:.0f} s",
        sent=sum(len(run.image_seqs) for run in streamer.runs), acked=acked_images,
        landed=landed_images, lost=acked_images - landed_images,
        duplicated=sum(max(0, n - len(run.acked_images)) for run, n in images),
        envelopes=acked_images, recovery_s=down["s3"],
        note="images (1 message each); landed = objects under raw/{robot}/{session}/frames/"))
    FIGURES.faults.extend(rows)
    assert_exactly_once_in_order(rows[0], mongo)
    for row in rows[1:]:
        assert row.lost == 0 and row.duplicated == 0, row
    cache.close()


@pytest.mark.timeout(900 if SIZES.broker_messages > 15_000 else 400)
def test_broker_restart_loses_nothing_acknowledged(
    rel_stack: ReliabilityStack, rel_settings: Settings, db: Any
) -> None:
    per_robot = envelopes_per_robot(SIZES.broker_messages)
    streamer = Streamer(rel_settings, per_robot, rate_per_robot=per_robot / SIZES.broker_stream_s).start()
    streamer.wait_sent(0.3)
    down = rel_stack.outage("kafka", 0)
    streamer.join(timeout_s=600)
    assert_all_sent_acked(streamer)
    results = landed_in_mongo(db, streamer)
    alive = [name for name in ("gateway", "sinks", "processors") if rel_stack.record(name)]
    row = fault_row("Kafka broker restarted", streamer, results,
                    f"broker down {down:.0f} s (SIGTERM, start); services still running: "
                    f"{', '.join(alive)}", down)
    FIGURES.faults.append(row)
    assert_exactly_once_in_order(row, results)
    assert alive == ["gateway", "sinks", "processors"], "a service died with the broker"
