"""The live fan-out's pieces: bounded drop-oldest queues, message framing, the snapshot filter."""

from __future__ import annotations

import orjson

from robostream.api.live import ClientQueue, SnapshotFilter, message_frame
from robostream.sinks.redis import canonical_json, telemetry_message, telemetry_message_of


async def test_a_full_queue_drops_its_oldest_messages_and_counts_them() -> None:
    queue = ClientQueue(3)
    for i in range(5):
        queue.put(b"%d" % i)
    dropped, items = await queue.take()
    assert (dropped, items) == (2, [b"2", b"3", b"4"])
    queue.put(b"5")
    assert await queue.take() == (0, [b"5"])
    assert queue.dropped_total == 2


def test_stats_messages_get_their_type_without_parsing() -> None:
    window = canonical_json({"metric": "pose.position.x", "resolution": "1m", "mean": 0.5})
    assert orjson.loads(message_frame("stats", window)) == {"type": "stats", "metric": "pose.position.x",
                                                            "resolution": "1m", "mean": 0.5}
    ts = telemetry_message("r", "s", [])
    assert message_frame("time_series", ts) is ts


def test_points_already_in_the_snapshot_are_not_sent_twice() -> None:
    points = [{"seq": 1, "i": i, "ts_us": 100 + i, "values": {"x": 1.0}} for i in range(4)]
    snapshot_filter = SnapshotFilter(newest_ts_us=101)
    first = snapshot_filter.apply(telemetry_message("r", "s", points))
    assert first is not None and [p["i"] for p in orjson.loads(first)["points"]] == [2, 3]
    again = telemetry_message("r", "s", points[:2])
    assert snapshot_filter.apply(again) is again  # caught up: no more filtering
    assert SnapshotFilter(200).apply(telemetry_message("r", "s", points)) is None


def test_telemetry_message_from_members_is_the_same_bytes() -> None:
    points = [{"seq": 3, "i": k, "ts_us": 1_000 + k, "values": {"b.y": 0.5 * k, "a.x": -1.25, "z": 1e300}}
              for k in range(4)]
    members = [canonical_json(p) for p in points]
    for robot, session, some in (("r", "s", points), ("robot_01", "s-1.x", points[:1]), ("r", "s", [])):
        expected = telemetry_message(robot, session, some)
        assert telemetry_message_of(robot, session, members[:len(some)]) == expected
