"""kill -9 a sink worker mid-stream, start it again: nothing lost, nothing duplicated.

The worker runs as its own process (``python -m robostream.cli.sink_cmd run``) with three
connectors; it is killed with SIGKILL while records keep arriving, then restarted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver
from robostream.sinks import keys
from tests.integration.sinks.conftest import subprocess_env
from tests.integration.sinks.helpers import (
    SAMPLES_PER_RECORD,
    image,
    points_in_mongo,
    produce,
    producer,
    stored_samples,
    telemetry,
    wait_until,
)

RECORDS = 3000
IMAGES = 60


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings, str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "robostream.cli.sink_cmd", "run", "--log-level", "WARNING"],
            env=subprocess_env(settings), stdout=log, stderr=subprocess.STDOUT,
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
    start_worker: Callable[[Settings, str], subprocess.Popen[bytes]],
) -> None:
    settings = make_settings(
        {"kind": "mongo", "topics": ["time_series", "images"], "batch_size": 200},
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

    first = start_worker(settings, "first")
    feeder = threading.Thread(target=stream, daemon=True)
    feeder.start()
    wait_until(lambda: points_in_mongo(db, session) >= 300, 120, "the first points to land")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    landed_at_kill = points_in_mongo(db, session)
    assert landed_at_kill < RECORDS * SAMPLES_PER_RECORD, "killed too late to test anything"

    second = start_worker(settings, "second")
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
    print(f"killed at {landed_at_kill} of {expected} points")
