"""Minute buckets and their pyramid on the real MongoDB-protocol server: a crash between a
minute's write and its pyramid's is repaired by the redelivered batch."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from robostream.processors import TelemetryBucket
from robostream.sinks.bucket_store import BucketStore, pieces_of
from robostream.sinks.buckets import LodSpan

MINUTE = 1_796_400_000_000_000 - 1_796_400_000_000_000 % 60_000_000


def batch(session: str, seqs: range) -> list[TelemetryBucket]:
    out = []
    for seq in seqs:
        ts = MINUTE + seq * 100_000 + np.arange(10) * 10_000
        out.append(TelemetryBucket("robot_001", session, MINUTE - MINUTE % 3_600_000_000, MINUTE, ts,
                                   [seq] * 10, list(range(10)), {"pose.position.x": np.sin(ts / 1e6)}))
    return out


def pyramid_counts(db: Any, session: str) -> dict[str, int]:
    docs = db.telemetry_lod.find({"session_id": session})
    counts: dict[str, int] = {}
    for doc in docs:
        span = LodSpan.from_document(doc)
        counts[span.level] = counts.get(span.level, 0) + int(span.stats[0, 0].sum())
    return counts


def test_a_redelivered_batch_repairs_a_pyramid_the_crash_left_behind(
        mongo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db = mongo[f"buckets_{uuid.uuid4().hex[:8]}"]
    session = "crash"
    try:
        BucketStore(db).write(pieces_of(batch(session, range(0, 20))))
        dying = BucketStore(db)

        def killed(*_: Any) -> None:
            raise SystemExit("kill -9 between the minute's write and its pyramid's")

        monkeypatch.setattr(dying, "_update_pyramid", killed)
        with pytest.raises(SystemExit):
            dying.write(pieces_of(batch(session, range(20, 40))))
        assert db.telemetry.find_one({"session_id": session})["n"] == 400  # the minute landed
        assert pyramid_counts(db, session)["1s"] == 200  # its pyramid did not

        added = BucketStore(db).write(pieces_of(batch(session, range(20, 40))))  # the redelivery
        assert added.get(("robot_001", session), 0) == 0  # nothing new in the minute
        assert pyramid_counts(db, session) == {"1s": 400, "10s": 400, "1m": 400, "1h": 400}
    finally:
        mongo.drop_database(db.name)
