"""`robostream sink migrate-telemetry`: per-record documents of an older robostream become minute
buckets, and the history API answers exactly the points it answered before."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import aiohttp
import orjson

from robostream.config import Settings
from robostream.sinks.buckets import micros_to_datetime, nested
from robostream.sinks.points import Telemetry, points
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, now_us


def old_documents(telemetry: Telemetry) -> list[dict[str, Any]]:
    """The per-record documents robostream wrote before minute buckets (one per record and minute)."""
    docs = []
    for bucket in telemetry.buckets:
        stamps = [int(t) for t in bucket.timestamps]
        first = stamps[0]
        seq = int(bucket.seqs[0])
        docs.append({
            "_id": f"{bucket.robot_id}/{bucket.session_id}/time_series/{seq}/{bucket.bucket_minute}",
            "robot_id": bucket.robot_id, "session_id": bucket.session_id, "data_type": "time_series",
            "seq": seq, "n": len(stamps), "timestamp": micros_to_datetime(first), "timestamp_us": first,
            "bucket_minute": micros_to_datetime(int(bucket.bucket_minute)),
            "t": [t - first for t in stamps], "indexes": [int(i) for i in bucket.indexes],
            "values": nested({k: [float(x) for x in v] for k, v in bucket.values.items()}),
            "joint_names": list(bucket.joint_names), "size_bytes": 100,
        })
    return docs


def migrate(settings: Settings, *args: str) -> str:
    env = {**os.environ, "ROBOSTREAM_MONGO__URI": settings.mongo.uri,
           "ROBOSTREAM_MONGO__DATABASE": settings.mongo.database, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "robostream", "sink", "migrate-telemetry", *args],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_old_documents_are_rewritten_into_minute_buckets(
        api: RunningApi, landing: Landing, ids: dict[str, str], mongo: Any, api_settings: Settings) -> None:
    robot_id, session_id = ids["robot"], ids["session"]
    start = now_us() - 600_000_000
    landing.session_start(robot_id, session_id, start)
    records = SimulatedRobot(robot_id, session_id, start, rate_hz=10.0, samples=10).records(300)  # 5 min
    telemetry = [Telemetry.from_columns(r) for r in records]
    db = mongo[api_settings.mongo.database]
    old = [d for t in telemetry for d in old_documents(t)]
    db.telemetry.insert_many(old)
    expected = sorted((p for t in telemetry for b in t.buckets for p in points(b)),
                      key=lambda p: (p["ts_us"], p["seq"], p["i"]))

    assert f"{len(old):,} per-record" in migrate(api_settings, "--dry-run")
    assert db.telemetry.count_documents({"session_id": session_id}) == len(old)  # nothing changed
    out = migrate(api_settings, "--batch", "100")
    assert f"done: {len(old):,} documents rewritten, {len(expected):,} samples stored" in out
    minutes = list(db.telemetry.find({"session_id": session_id}))
    groups = ("channels", "imu", "joints", "pose")  # the default 100 Hz streams, a document each
    assert {d["_id"].rsplit("/", 1)[0] for d in minutes} == {f"{robot_id}/{session_id}/{g}" for g in groups}
    pose = [d for d in minutes if d["group"] == "pose"]
    assert 5 <= len(pose) <= 6 and sum(d["n"] for d in pose) == len(expected)
    assert "done: 0" not in migrate(api_settings)  # nothing left: says so and stops
    assert db.telemetry_lod.count_documents({"session_id": session_id, "level": "1m"}) >= 1

    url = (f"{api.url}/v1/telemetry?robot={robot_id}&session={session_id}&from={start / 1e6}"
           f"&to={(start + 600_000_000) / 1e6}")
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        rows = [orjson.loads(line) for line in (await response.read()).splitlines()]
    assert rows == expected
