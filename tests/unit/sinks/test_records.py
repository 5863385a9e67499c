"""Records -> points, slices and documents; the converter; DLQ context headers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robostream.config import ConnectorSettings, Settings
from robostream.processors import (
    DerivedCodec,
    FrameBatch,
    FrameKind,
    MetricStats,
    TelemetryBucket,
    WindowStats,
)
from robostream.processors.columns import columns_from_payload
from robostream.schemas import Envelope, InMemorySchemaResolver, build_envelope, encode_record
from robostream.schemas.examples import example_payload
from robostream.sinks import PoisonRecordError, RetriableSinkError, SinkRecord, TaskFailedError
from robostream.sinks.bucket_store import pieces_of
from robostream.sinks.buckets import F8, I4, I8, Minute, nested, unpack
from robostream.sinks.convert import Converter, is_transient
from robostream.sinks.errors import ErrorHandler, Stage, context_headers
from robostream.sinks.points import Telemetry, point_members, points
from robostream.sinks.redis import canonical_json
from robostream.topics import StatsResolution

T0 = 1_718_000_099.95  # 50 ms before a minute boundary: a 10-sample record crosses it


def envelope(seq: int = 3, payload: dict[str, object] | None = None, ts: float = T0) -> Envelope:
    return build_envelope("time_series", payload or example_payload("time_series"),
                          robot_id="robot_001", session_id="s1", seq=seq, timestamp=ts)


def telemetry(env: Envelope) -> Telemetry:
    return Telemetry.from_columns(columns_from_payload(
        env.robot_id, env.session_id, env.seq, env.timestamp_us, env.payload))


def test_a_record_of_n_samples_is_n_points_split_at_the_minute() -> None:
    tel = telemetry(envelope())
    assert tel.point_count == 10 and len(tel.buckets) == 2  # 5 before the minute, 5 after
    pts = [p for b in tel.buckets for p in points(b)]
    assert [(p["seq"], p["i"]) for p in pts] == [(3, i) for i in range(10)]
    assert pts[1]["ts_us"] - pts[0]["ts_us"] == 10_000  # 100 Hz
    assert pts[0]["values"]["pose.orientation.w"] == 1.0
    assert len([k for k in pts[0]["values"] if k.startswith("joints.angle.")]) == 7


def test_a_missing_sample_is_left_out_of_the_point() -> None:
    env = envelope(payload={"t": [0, 10], "channels": {"grip": [float("nan"), 0.5]}}, ts=1_718_000_000)
    first, second = points(telemetry(env).buckets[0])
    assert first["values"] == {} and second["values"] == {"channels.grip": 0.5}


def minute_documents(tel: Telemetry) -> list[dict[str, object]]:
    """The ``telemetry`` documents the MongoDB sink writes for one record, per minute."""
    docs = []
    for piece in pieces_of(tel.buckets):
        minute = Minute(piece.robot_id, piece.session_id, piece.group, piece.minute_us)
        minute.merge(piece.times, piece.seqs, piece.indexes, piece.names, piece.values)
        docs.append(minute.document())
    return docs


def test_one_document_per_channel_group_and_minute_with_packed_columns() -> None:
    docs = minute_documents(telemetry(envelope()))
    groups = ["channels", "force_torque", "imu", "joints", "metrics", "pose"]
    assert [d["_id"] for d in docs] == [f"robot_001/s1/{g}/{m}" for m in (1718000040000000, 1718000100000000)
                                        for g in groups]
    assert [d["n"] for d in docs] == [5] * 6 + [5] * 6
    pose = docs[groups.index("pose")]
    assert list(unpack(pose["t"], I8)) == [59_950_000 + k * 10_000 for k in range(5)]  # from the minute
    assert list(unpack(pose["seq"], I8)) == [3] * 5 and list(unpack(pose["i"], I4)) == [0, 1, 2, 3, 4]
    assert unpack(pose["values"]["pose"]["position"]["x"], F8)[0] == pytest.approx(0.0)
    assert set(pose["values"]) == {"pose"}  # only its group's columns
    joints = docs[groups.index("joints")]
    assert len(joints["values"]["joints"]["angle"]) == 7
    assert len(unpack(joints["values"]["joints"]["angle"]["3"], F8)) == 5
    assert joints["summary"]["joints"]["angle"]["3"]["count"] == 5
    assert pose["bucket_hour"].isoformat() == "2024-06-10T06:00:00+00:00"
    assert Minute.from_document(joints).names == joints["channels"]


def test_nested_keeps_the_metric_path() -> None:
    assert nested({"a.b.c": [1.0], "a.d": [2.0], "e": [3.0]}) == {"a": {"b": {"c": [1.0]}, "d": [2.0]},
                                                                 "e": [3.0]}


def test_raw_and_derived_telemetry_give_the_same_documents() -> None:
    settings = Settings(topics={"prefix": "u"})
    resolver = InMemorySchemaResolver()
    converter = Converter(settings, resolver)
    env = envelope()
    raw = encode_record(env, resolver, topic_prefix="u")
    raw_record = SinkRecord("u.time_series", 0, 0, raw.key, raw.value, list(raw.headers))
    converter.convert(raw_record)
    codec = DerivedCodec(resolver)
    derived = []
    for bucket in raw_record.item.buckets:
        record = SinkRecord("u.derived.telemetry_bucketed", 0, 0, bucket.key,
                            codec.encode("u.derived.telemetry_bucketed", bucket))
        converter.convert(record)
        derived.append(record)
    raw_docs = minute_documents(raw_record.item)
    derived_docs = [d for r in derived for d in minute_documents(r.item)]
    assert raw_docs == derived_docs


def test_converter_decodes_stats_and_frames_and_validates_their_ids() -> None:
    settings = Settings(topics={"prefix": "u"})
    resolver = InMemorySchemaResolver()
    converter = Converter(settings, resolver)
    codec = DerivedCodec(resolver)
    stats = WindowStats("r1", "s1", StatsResolution.HOUR, 0, 3_600_000_000,
                        [MetricStats("pose.position.x", 3, 0.0, 1.0, 0.5, 0.1, 1.0, 5)])
    record = SinkRecord("u.derived.stats_1h", 0, 0, b"r1/s1", codec.encode("u.derived.stats_1h", stats))
    converter.convert(record)
    assert record.item == stats
    frames = FrameBatch("r1", "../etc", "front", FrameKind.RGB, [], [])
    bad = SinkRecord("u.derived.frames", 0, 0, None, codec.encode("u.derived.frames", frames))
    with pytest.raises(PoisonRecordError, match="invalid session_id"):
        converter.convert(bad)
    wrong_key = SinkRecord("u.derived.stats_1h", 0, 0, b"r2/s1", record.value)
    with pytest.raises(PoisonRecordError, match="does not match"):
        converter.convert(wrong_key)
    with pytest.raises(PoisonRecordError, match="no sink converter"):
        converter.convert(SinkRecord("u.rpc.requests", 0, 0, None, b"x"))
    bucket_on_stats_topic = SinkRecord("u.derived.stats_1m", 0, 0, None, codec.encode(
        "u.derived.telemetry_bucketed", TelemetryBucket("r1", "s1", 0, 0, [1], [1], [0], {})))
    with pytest.raises(PoisonRecordError, match="expected WindowStats"):
        converter.convert(bucket_on_stats_topic)


def test_converter_checks_the_key_of_raw_records() -> None:
    settings = Settings(topics={"prefix": "u"})
    resolver = InMemorySchemaResolver()
    raw = encode_record(envelope(), resolver, topic_prefix="u")
    with pytest.raises(PoisonRecordError, match="does not match"):
        Converter(settings, resolver).convert(SinkRecord("u.time_series", 0, 0, b"robot_002/s1", raw.value))
    image = build_envelope("images", example_payload("images"), robot_id="r1", session_id="s1", seq=1)
    encoded = encode_record(image, resolver, topic_prefix="u")
    ok = SinkRecord("u.images", 0, 0, encoded.key, encoded.value, list(encoded.headers))
    Converter(settings, resolver).convert(ok)
    assert ok.item == image


def test_an_unreachable_registry_is_retriable_not_poison() -> None:
    class DownRegistry(InMemorySchemaResolver):
        def schema_for(self, schema_id: int) -> object:
            raise ConnectionRefusedError("registry down")

    settings = Settings(topics={"prefix": "u"})
    record = encode_record(envelope(), InMemorySchemaResolver(), topic_prefix="u")
    with pytest.raises(RetriableSinkError, match="registry unreachable"):
        Converter(settings, DownRegistry()).convert(
            SinkRecord("u.time_series", 0, 0, record.key, record.value))
    assert is_transient(TimeoutError()) and not is_transient(ValueError())


def test_context_headers_name_the_record_and_the_exception() -> None:
    record = SinkRecord("robot.images", 3, 1234, b"k", b"v")
    try:
        raise KeyError("camera_id")
    except KeyError as cause:
        try:
            raise PoisonRecordError("cannot map") from cause
        except PoisonRecordError as exc:
            headers = dict(context_headers(record, exc, connector="s3", task_id=2,
                                           stage=Stage.TASK_PUT, executing_class="robostream.sinks.s3"))
    assert headers == {
        "__connect.errors.topic": b"robot.images",
        "__connect.errors.partition": b"3",
        "__connect.errors.offset": b"1234",
        "__connect.errors.connector.name": b"s3",
        "__connect.errors.task.id": b"2",
        "__connect.errors.stage": b"TASK_PUT",
        "__connect.errors.class.name": b"robostream.sinks.s3",
        "__connect.errors.exception.class.name": b"KeyError",
        "__connect.errors.exception.message": b"'camera_id'",
        "__connect.errors.exception.stacktrace": headers["__connect.errors.exception.stacktrace"],
    }
    assert b"KeyError" in headers["__connect.errors.exception.stacktrace"]


def test_tolerance_none_raises_and_no_dlq_means_log_only() -> None:
    settings = Settings()
    record = SinkRecord("robot.images", 0, 1, None, b"v")
    strict = ErrorHandler(ConnectorSettings(name="a", kind="s3", topics=["images"]), settings, 0,
                          "robot.dlq")
    with pytest.raises(TaskFailedError, match=r"robot.images\[0\]@1"):
        strict.handle(record, ValueError("bad"), Stage.TASK_PUT)
    lenient = ErrorHandler(ConnectorSettings(name="a", kind="s3", topics=["images"],
                                             errors_tolerance="all", dlq_topic=None),
                           settings, 0, None)
    lenient.handle(record, ValueError("bad"), Stage.TASK_PUT)
    lenient.flush()
    assert lenient.reported == 1


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_point_members_are_the_canonical_json_of_the_points(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12))
    names = data.draw(st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
                               min_size=0, max_size=6, unique=True))
    values = {name: data.draw(st.lists(st.floats(allow_infinity=False, width=64), min_size=n, max_size=n))
              for name in names}
    payload = {"t": sorted(data.draw(st.lists(st.integers(0, 200_000_000), min_size=n, max_size=n))),
               "channels": values}
    tel = telemetry(envelope(seq=data.draw(st.integers(0, 2**62)), payload=payload,
                             ts=data.draw(st.floats(1e9, 2e9))))
    for bucket in tel.buckets:
        assert point_members(bucket) == [(p["ts_us"], canonical_json(p)) for p in points(bucket)]
