"""The derived records: Avro in the Confluent wire format, registered per topic subject."""

from __future__ import annotations

import math
import struct

import pytest

from robostream.processors import (
    BundlePart,
    DerivedCodec,
    DerivedRecordError,
    FrameBatch,
    FrameKind,
    FrameMeta,
    FrameTier,
    MetricStats,
    StoredObject,
    TelemetryBucket,
    WindowStats,
    schema_str,
)
from robostream.schemas import InMemorySchemaResolver
from robostream.topics import StatsResolution


def _codec() -> tuple[DerivedCodec, InMemorySchemaResolver]:
    resolver = InMemorySchemaResolver()
    return DerivedCodec(resolver), resolver


def test_values_are_confluent_wire_format_registered_under_the_topic_subject() -> None:
    codec, resolver = _codec()
    bucket = TelemetryBucket("r1", "s1", 0, 0, [1, 2], [5, 5], [0, 1], {"pose.position.x": [1.0, 2.0]})
    value = codec.encode("robot.derived.telemetry_bucketed", bucket)
    magic, schema_id = struct.unpack(">bI", value[:5])
    assert magic == 0
    assert resolver.subjects() == {"robot.derived.telemetry_bucketed-value": [schema_id]}
    assert resolver.schema_str_for(schema_id) == schema_str(TelemetryBucket)


def test_telemetry_bucket_round_trip_points_and_slices() -> None:
    codec, _ = _codec()
    nan = float("nan")
    bucket = TelemetryBucket("r1", "s1", 0, 60_000_000, [60_000_001, 60_000_002, 60_000_003],
                             [7, 7, 8], [8, 9, 0], {"a": [1.0, nan, 3.0]}, ["j0"], {"channels.w": "m"})
    back = codec.decode_as(codec.encode("t", bucket), TelemetryBucket)
    assert list(back.timestamps) == [60_000_001, 60_000_002, 60_000_003]
    assert [p.values for p in back.points()] == [{"a": 1.0}, {}, {"a": 3.0}]
    slices = list(back.slices())
    assert [(s.seq, s.indexes) for s in slices] == [(7, [8, 9]), (8, [0])]
    assert math.isnan(slices[0].values["a"][1])


def test_window_stats_round_trip_and_flat_aggregates() -> None:
    codec, _ = _codec()
    stats = WindowStats("r1", "s1", StatsResolution.MINUTE, 0, 60_000_000,
                        [MetricStats("metrics.cpu_percent", 3, 1.0, 3.0, 2.0, 0.8, 3.0, 59, "%")])
    back = codec.decode_as(codec.encode("robot.derived.stats_1m", stats), WindowStats)
    assert back == stats
    (flat,) = back.aggregates()
    assert flat.redis_key == "stats:r1:s1:metrics.cpu_percent:1m"
    assert (flat.count, flat.mean, flat.unit) == (3, 2.0, "%")


def test_frame_batch_round_trip() -> None:
    codec, _ = _codec()
    tier = FrameTier("original", "raw/r1/s1/compressed/front/rgb/original/1.mp4", "mp4", "x", 64, 48, 3, 0, 1)
    batch = FrameBatch(
        "r1", "s1", "front", FrameKind.RGB, [StoredObject(tier.key, "video/mp4", 3, "ab", b"abc")],
        [FrameMeta("front-rgb-1", 1, 1, 0, "jpeg", 100, 64, 48, 3, [tier], b"\xff\xd8")],
        [BundlePart("raw/r1/s1/compressed/19700101T00_bundle.tar.gz", "1-front-rgb", False, ["m"], b"z")],
    )
    back = codec.decode_as(codec.encode("robot.derived.frames", batch), FrameBatch)
    assert back == batch
    assert back.frames[0].compression_ratio == pytest.approx(0.97)
    assert back.frames[0].tier("original") == tier


def test_not_wire_format_or_unknown_schema_is_an_error() -> None:
    codec, _ = _codec()
    with pytest.raises(DerivedRecordError):
        codec.decode(b"\x01\x00\x00\x00\x01xx")
    with pytest.raises(DerivedRecordError):
        codec.decode(b"\x00\x00\x00\x00\x63xx")
