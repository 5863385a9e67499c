"""From the sinks' telemetry documents back to points, in time order, and downsampling."""

from __future__ import annotations

import numpy as np
import pytest

from robostream.api.errors import ApiError
from robostream.api.history import (
    MSGPACK,
    NDJSON,
    Decimator,
    TelemetryQuery,
    TimeOrder,
    doc_points,
    flatten,
    merge_windows,
    metric_filter,
    negotiate,
)
from robostream.processors.columns import columns_from_payload
from robostream.simulator.robot import RobotModel, time_series_payload
from robostream.sinks.base import SinkRecord
from robostream.sinks.mongo import telemetry_documents
from robostream.sinks.points import Telemetry, nested, points

START = 1_795_600_799_950_000  # 50 ms before a minute: the record crosses it


def record(seq: int = 7) -> Telemetry:
    times = np.arange(10) / 100.0
    payload = time_series_payload(RobotModel(1), ("pose", "joints", "imu"), times)
    return Telemetry.from_columns(columns_from_payload("robot_001", "s1", seq, START, payload))


def query(**changes: object) -> TelemetryQuery:
    base = {"robot_id": "robot_001", "session_id": "s1", "start_us": 0, "end_us": 1 << 62,
            "fields": (), "max_points": None}
    return TelemetryQuery(**{**base, **changes})  # type: ignore[arg-type]


def test_flatten_undoes_the_sinks_nesting() -> None:
    values = {"pose.position.x": [1.0], "joints.angle.3": [2.0], "channels.gripper_width": [3.0]}
    assert flatten(nested(values)) == values


def test_documents_give_back_exactly_the_sinks_points() -> None:
    telemetry = record()
    sink_record = SinkRecord("robot.time_series", 0, 1, None, b"x" * 100, item=telemetry)
    docs = telemetry_documents(telemetry, sink_record)
    assert len(docs) == 2  # split at the minute, as the MongoDB sink stores it
    from_docs = [p for d in docs for p in doc_points(d, query())]
    assert from_docs == [p for b in telemetry.buckets for p in points(b)]
    assert len(from_docs) == 10 and {"pose.position.x", "joints.angle.6"} <= set(from_docs[0]["values"])


def test_points_outside_the_range_are_left_out() -> None:
    telemetry = record()
    docs = telemetry_documents(telemetry, SinkRecord("t", 0, 1, None, b"", item=telemetry))
    kept = [p for d in docs for p in doc_points(d, query(start_us=START + 20_000, end_us=START + 60_000))]
    assert [p["i"] for p in kept] == [2, 3, 4, 5]


def test_overlapping_documents_are_merged_into_time_order() -> None:
    order = TimeOrder()
    slow = [{"ts_us": t, "seq": 1, "i": i} for i, t in enumerate((0, 30, 60))]  # 33 Hz stream
    fast = [{"ts_us": t, "seq": 2, "i": i} for i, t in enumerate((10, 20))]
    later = [{"ts_us": t, "seq": 3, "i": i} for i, t in enumerate((40, 50))]
    out = order.add(0, slow) + order.add(10, fast) + order.add(40, later) + order.flush()
    assert [p["ts_us"] for p in out] == [0, 10, 20, 30, 40, 50, 60]


def test_decimation_keeps_the_first_point_of_each_bucket() -> None:
    decimator = Decimator(start_us=0, bucket_us=10)
    rows = [{"ts_us": t} for t in (0, 3, 9, 10, 25, 29, 31)]
    assert [r["ts_us"] for r in decimator.keep(rows[:4]) + decimator.keep(rows[4:])] == [0, 10, 25, 31]


def test_windows_merge_into_one_bucket_per_metric() -> None:
    windows = [
        {"metric": "pose.position.x", "count": 60, "mean": 1.0, "min": 0.0, "max": 2.0},
        {"metric": "pose.position.x", "count": 20, "mean": 3.0, "min": 2.5, "max": 4.0},
        {"metric": "joints.angle.0", "count": 10, "mean": -1.0, "min": -2.0, "max": 0.0},
        {"metric": "empty", "count": 0, "mean": None, "min": None, "max": None},
    ]
    row = merge_windows(windows, 0, 120)
    assert row["values"] == {"joints.angle.0": -1.0, "pose.position.x": 1.5}
    assert row["min"]["pose.position.x"] == 0.0 and row["max"]["pose.position.x"] == 4.0
    assert row["count"] == {"joints.angle.0": 10, "pose.position.x": 80}


def test_fields_select_metrics_by_prefix() -> None:
    pattern = metric_filter(("pose.position", "joints"))["metric"]["$regex"]
    import re

    assert [m for m in ("pose.position.x", "pose.positions", "joints.angle.1", "imu.x")
            if re.match(pattern, m)] == ["pose.position.x", "joints.angle.1"]
    assert metric_filter(()) == {}


def test_the_rows_are_bounded_by_max_points() -> None:
    assert query(start_us=0, end_us=3_600_000_000, max_points=1000).bucket_us == 3_600_000
    assert query().bucket_us is None


@pytest.mark.parametrize(("accept", "fmt", "media"), [
    (None, None, NDJSON), ("*/*", None, NDJSON), ("application/x-ndjson", None, NDJSON),
    ("application/msgpack", None, MSGPACK), ("application/x-msgpack;q=0.9, */*;q=0.1", None, MSGPACK),
    ("text/html, application/json;q=0.5", "msgpack", MSGPACK),
])
def test_negotiation(accept: str | None, fmt: str | None, media: str) -> None:
    assert negotiate(accept, fmt) == media


def test_unacceptable_answers_406() -> None:
    with pytest.raises(ApiError) as caught:
        negotiate("text/html, application/json", None)
    assert caught.value.status == 406
