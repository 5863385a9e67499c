"""SecantusDB speaks enough MongoDB for robostream: indexes, range queries, aggregation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def test_compound_index_serves_a_time_range_query(mongo: Any, unique: str) -> None:
    coll = mongo["it_stack"][f"telemetry_{unique}"]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    coll.insert_many([
        {"robot_id": f"robot_{r:03d}", "session_id": "s1", "timestamp": t0 + timedelta(seconds=i),
         "cpu": float(i % 100)}
        for r in range(3) for i in range(600)
    ])
    coll.create_index([("robot_id", 1), ("session_id", 1), ("timestamp", 1)])

    query = {"robot_id": "robot_001", "session_id": "s1",
             "timestamp": {"$gte": t0 + timedelta(seconds=100), "$lt": t0 + timedelta(seconds=200)}}
    docs = list(coll.find(query).sort("timestamp", 1))
    assert len(docs) == 100
    assert docs[0]["timestamp"].replace(tzinfo=UTC) == t0 + timedelta(seconds=100)

    plan = str(coll.find(query).explain())
    assert "IXSCAN" in plan and "robot_id_1_session_id_1_timestamp_1" in plan

    per_minute = list(coll.aggregate([
        {"$match": {"robot_id": "robot_002"}},
        {"$group": {"_id": {"$dateTrunc": {"date": "$timestamp", "unit": "minute"}},
                    "n": {"$sum": 1}, "max_cpu": {"$max": "$cpu"}}},
        {"$sort": {"_id": 1}},
    ]))
    assert [d["n"] for d in per_minute] == [60] * 10
    assert per_minute[0]["max_cpu"] == 59.0
