"""kill -9 a sink worker mid-stream, start it again: nothing lost, nothing duplicated.

The worker runs as its own process (``python -m robostream.cli.sink_cmd run``) with three
connectors; it is killed with SIGKILL while records keep arriving, then restarted. It is killed
once it has written records it has not committed yet (the Mongo connector commits every 5 s),
so the restarted worker must read those again: the test checks it did (its own count of records
written, against the committed offsets at the kill), and that they are stored once all the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, DataType
from robostream.sinks import group_id, keys
from robostream.topics import topic_for
from tests.conftest import free_port
from tests.integration.sinks.conftest import subprocess_env
from tests.integration.sinks.helpers import (
    SAMPLES_PER_RECORD,
    image,
    points_in_mongo,
    produce,
    producer,
    rest,
    stored_samples,
    telemetry,
    wait_until,
)

RECORDS = 3000
IMAGES = 60


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, name: str, rest_port: int = 0) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "robostream.cli.sink_cmd", "run", "--log-level", "WARNING"],
            env={**subprocess_env(settings), "ROBOSTREAM_SINKS__PORT": str(rest_port)},
            stdout=log, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[3])
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, mongo: Any,
    redis_client: Any, s3: Any, tag: str,
    start_worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    settings = make_settings(
        {"kind": "mongo", "topics": ["time_series", "images"], "batch_size": 200,
         "offset_flush_interval_ms": 5000},  # written records stay uncommitted for seconds
        {"kind": "redis", "topics": ["time_series", "images"], "batch_size": 200},
        {"kind": "s3", "topics": ["images"], "batch_size": 20},
    )
    session = f"crash-{tag}"
    db = mongo[settings.mongo.database]
    records = list(telemetry(session, RECORDS))
    images = [image(session, seq, ts_s=time.time() + seq) for seq in range(IMAGES)]
    kafka = producer(settings)

    def stream() -> None:  # ~15 s of data arriving while the worker runs, dies and restarts
        for start in range(0, RECORDS, 100):
            produce(settings, resolver, records[start:start + 100], kafka)
            produce(settings, resolver, images[start // 50:start // 50 + 2], kafka)
            time.sleep(0.5)

    mongo_group = group_id(f"mongo-{tag}")
    mongo_topics = [topic_for(DataType.TIME_SERIES, settings), topic_for(DataType.IMAGES, settings)]
    telemetry_topic = mongo_topics[0]

    def landed_seqs() -> set[int]:
        return {seq for seq, _ in stored_samples(db, session)}

    first = start_worker(settings, "first")
    feeder = threading.Thread(target=stream, daemon=True)
    feeder.start()
    def committed_then_written() -> bool:
        """Some records committed, and more stored than that. The topics hold this test's records
        only: more records stored than committed means some stored ones are past the commit."""
        done = sum(committed(settings, mongo_group, [telemetry_topic]).values())
        return 0 < done < len(landed_seqs())

    wait_until(committed_then_written, 120, "points committed, then more written and not committed yet")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    landed_at_kill = points_in_mongo(db, session)
    seqs_at_kill = landed_seqs()
    committed_at_kill = committed(settings, mongo_group, mongo_topics)
    assert landed_at_kill < RECORDS * SAMPLES_PER_RECORD, "killed too late to test anything"

    rest_port = free_port()
    second = start_worker(settings, "second", rest_port)
    feeder.join(120)
    expected = RECORDS * SAMPLES_PER_RECORD
    wait_until(lambda: points_in_mongo(db, session) == expected, 240, "every point after restart")
    frames = db.frames_metadata
    wait_until(lambda: frames.count_documents({"session_id": session}) == IMAGES, 120, "every frame")
    prefix = f"raw/robot_001/{session}/frames/"
    wait_until(lambda: s3.list_objects_v2(Bucket=settings.s3.bucket, Prefix=prefix).get("KeyCount") == IMAGES,
               120, "every image in S3")
    ring = keys.latest_key("robot_001", session)
    wait_until(lambda: redis_client.zcard(ring) == 1000
               and orjson.loads(redis_client.zrange(ring, -1, -1)[0])["seq"] == RECORDS - 1,
               120, "the ring to end with the last record")
    wait_until(lambda: len(redis_client.keys(f"frames:robot_001:{session}:*")) == IMAGES, 60,
               "a frames: key per image")
    wait_until(lambda: (db.sessions.find_one({"_id": f"robot_001/{session}"}) or {}).get(
        "stats", {}).get("total_telemetry_points") == expected, 60, "exact session stats")
    # The restarted worker read again, from the committed offsets, what the killed one had
    # written: records it stored before the kill sit past the offsets committed then, and the
    # second worker wrote every record from those offsets to the end (images included).
    offsets = seq_offsets(settings, telemetry_topic, session)
    rewritten = {seq for seq in seqs_at_kill if offsets[seq][1] >= committed_at_kill[offsets[seq][0]]}
    assert rewritten, "the killed worker had written nothing uncommitted: nothing to redeliver"
    assert len(rewritten) < len(seqs_at_kill), "nothing committed at the kill: a restart from 0 passes"
    ends = end_offsets(settings, mongo_topics)
    from_commit = sum(end - committed_at_kill.get(tp, 0) for tp, end in ends.items())
    url = f"http://127.0.0.1:{rest_port}"
    [task] = rest(url, f"/connectors/mongo-{tag}/status")["tasks"]
    assert task["metrics"]["records_written"] == from_commit
    assert task["metrics"]["records_failed"] == 0
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0

    # Nothing duplicated: every point once in the minute buckets.
    pairs = stored_samples(db, session)
    assert len(pairs) == len(set(pairs)) == expected
    assert sorted({seq for seq, _ in pairs}) == list(range(RECORDS))
    minutes = {(e.timestamp_us + t) // 60_000_000 * 60_000_000 for e in records for t in e.payload["t"]}
    stored = db.telemetry.find({"session_id": session, "group": "pose"}, {"timestamp_us": 1})
    assert sorted(d["timestamp_us"] for d in stored) == sorted(minutes)  # each minute document once
    tenth = list(db.telemetry_lod.find({"session_id": session, "level": "10s", "group": "pose"}))
    assert sum(int(np.frombuffer(d["stats"]["pose"]["position"]["x"], "<f8")[:d["bins"]].sum())
               for d in tenth) == expected  # the pyramid counts every point once too
    members = [orjson.loads(m) for m in redis_client.zrange(ring, 0, -1)]
    assert len({(m["seq"], m["i"]) for m in members}) == 1000
    stats = db.sessions.find_one({"_id": f"robot_001/{session}"})["stats"]
    assert stats["total_frames"] == IMAGES
    print(f"killed at {landed_at_kill} of {expected} points, {len(rewritten)} records written twice")


TP = tuple[str, int]


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": group,
                     "enable.auto.commit": False})


def _partitions(consumer: Consumer, topics: list[str]) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=10).topics
    return [TopicPartition(t, p) for t in topics for p in metadata[t].partitions]


def committed(settings: Settings, group: str, topics: list[str]) -> dict[TP, int]:
    """The offsets ``group`` committed on ``topics`` (0 where it committed nothing yet)."""
    consumer = _consumer(settings, group)  # never subscribes: the group's members are untouched
    try:
        found = consumer.committed(_partitions(consumer, topics), timeout=10)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in found}
    finally:
        consumer.close()


def end_offsets(settings: Settings, topics: list[str]) -> dict[TP, int]:
    consumer = _consumer(settings, f"crash-test-{uuid.uuid4().hex[:8]}")
    try:
        return {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1]
                for tp in _partitions(consumer, topics)}
    finally:
        consumer.close()


def seq_offsets(settings: Settings, topic: str, session: str) -> dict[int, tuple[TP, int]]:
    """``seq -> ((topic, partition), offset)`` of the session's records on ``topic``."""
    consumer = _consumer(settings, f"crash-test-{uuid.uuid4().hex[:8]}")
    key = f"robot_001/{session}".encode()
    found: dict[int, tuple[TP, int]] = {}
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
                         for tp in _partitions(consumer, [topic])])
        deadline = time.monotonic() + 60
        while len(found) < RECORDS and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None and msg.key() == key:
                    seq = int(dict(msg.headers() or [])["seq"])
                    found[seq] = ((topic, msg.partition() or 0), msg.offset() or 0)
        return found
    finally:
        consumer.close()


