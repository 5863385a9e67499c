"""One worker on the real broker: bucketed telemetry, windows and compacted frames land on the
derived topics, in the shapes the sinks read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from robostream.config import Settings
from robostream.processors import FrameBatch, TelemetryBucket, WindowStats
from robostream.processors.compaction import bundles, depth, h264, pointcloud, synthetic
from robostream.topics import bucketed_telemetry_topic, create_topics, frames_topic, stats_topic
from tests.integration.processors.harness import (
    Registry,
    Worker,
    camera_frames,
    produce,
    read_topic,
    telemetry,
)

HOUR_US = 3_600_000_000
#: 20 s before an hour boundary (UTC): the telemetry crosses a minute and an hour.
BOUNDARY = 1_800_000_000 - 1_800_000_000 % 3600 + 3600
START = BOUNDARY - 20.0
PSNR_THRESHOLD_DB = 35.0


@pytest.fixture(scope="module")
def pipeline(stack: object, settings: Settings, registry: Registry,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Topics pr<uuid>.*, telemetry of two sessions and frames around an hour, one worker."""
    import uuid

    prefix = f"pr{uuid.uuid4().hex[:10]}"
    tuned = {"app_id": f"proc-{prefix}", "idle_s": 1.0, "status_interval_s": 0.5,
             "session_timeout_s": 6.0, "batch_within_s": 0.1, "segment_gap_s": 0.5,
             "bucketed_output": True}  # the bucketed topic is opt-in
    made = settings.model_copy(update={
        "topics": settings.topics.model_copy(update={"prefix": prefix, "partitions": 2}),
        "schema_registry": settings.schema_registry.model_copy(update={"url": registry.url}),
        "processors": settings.processors.model_copy(update=tuned),
    })
    assert create_topics(made).ok
    produce(made, telemetry("robot_001", "s1", START, 300) + telemetry("robot_002", "s2", START, 120))
    # 40 RGB frames at 30 fps from 1 s before the hour: segments split at the hour boundary
    produce(made, camera_frames("robot_001", "s1", BOUNDARY - 1.0, 40, depth_frames=2, clouds=1))
    worker = Worker(made, "pipeline", tmp_path_factory.mktemp("pipeline"))
    try:
        worker.wait_for(lambda s: s["totals"].get("telemetry_records", 0) >= 420
                        and s["totals"].get("frames_out", 0) >= 43, timeout=120)
        yield made
    finally:
        worker.kill()


def _points(buckets: list[TelemetryBucket]) -> dict[tuple[str, int, int], tuple[int, int, int]]:
    return {(b.session_id, p.seq, p.index): (p.timestamp, b.bucket_minute, b.bucket_hour)
            for b in buckets for p in b.points()}


def test_every_point_lands_once_with_its_hour_and_minute(pipeline: Settings) -> None:
    buckets = read_topic(pipeline, bucketed_telemetry_topic(pipeline),
                         until=lambda rs: len(_points(rs)) >= 4200)
    points = _points(buckets)
    assert len(points) == 4200  # (300 + 120) records x 10 samples, each identified once
    for ts, minute, hour in points.values():
        assert minute == ts - ts % 60_000_000 and hour == ts - ts % HOUR_US
    assert {b.bucket_hour for b in buckets} == {BOUNDARY * 1_000_000 - HOUR_US, BOUNDARY * 1_000_000}
    one = next(b for b in buckets if b.session_id == "s1")
    assert "joints.angle.6" in one.values and one.units == {"channels.gripper_width": "m"}


def test_closed_windows_land_on_the_stats_topics(pipeline: Settings) -> None:
    seconds = read_topic(pipeline, stats_topic("1s", pipeline), until=lambda rs: len(rs) >= 40)
    assert {w.session_id for w in seconds} == {"s1", "s2"}
    hours: list[WindowStats] = read_topic(pipeline, stats_topic("1h", pipeline),
                                          until=lambda rs: len(rs) >= 2)
    hour = next(w for w in hours if w.session_id == "s1")
    assert hour.window_end == BOUNDARY * 1_000_000
    cpu = next(a for a in hour.aggregates() if a.metric == "metrics.cpu_percent")
    assert cpu.count == 2000 and cpu.mean == sum(k % 100 for k in range(2000)) / 2000
    assert cpu.redis_key == "stats:robot_001:s1:metrics.cpu_percent:1h" and cpu.unit == "%"


def _frame_batches(settings: Settings) -> list[FrameBatch]:
    def done(batches: list[FrameBatch]) -> bool:
        return sum(len(b.frames) for b in batches) >= 43 and any(
            p.last for b in batches for p in b.bundle_parts)
    return read_topic(settings, frames_topic(settings), until=done)


def test_frames_are_compacted_with_tiers_and_hourly_bundles(pipeline: Settings) -> None:
    batches = _frame_batches(pipeline)
    objects = {o.key: o.content for b in batches for o in b.objects}
    frames = {f.frame_id: f for b in batches for f in b.frames}
    rgb = sorted((f for f in frames.values() if "-rgb-" in f.frame_id), key=lambda f: f.timestamp)
    assert len(rgb) == 40
    segments: dict[str, Any] = {}
    for meta in rgb:
        original = meta.tier("original")
        assert original is not None and original.key in objects
        assert {t.tier for t in meta.tiers} == {"original", "preview", "thumbnail"}
        assert meta.thumbnail is not None and objects[meta.tier("thumbnail").key] == meta.thumbnail  # type: ignore[union-attr]
        segments.setdefault(original.key, []).append(meta)
    assert sorted(len(v) for v in segments.values()) == [10, 30]  # split at the hour boundary
    for key, metas in segments.items():
        decoded = h264.decode_segment(objects[key])
        assert len(decoded) == len(metas)
        first = (metas[0].timestamp / 1e6 - (BOUNDARY - 1.0)) * 30
        for i, image in enumerate(decoded):
            source = synthetic.rgb_frame(round(first) + i, 320, 180)
            assert h264.psnr(source, image) >= PSNR_THRESHOLD_DB
    (depth_meta,) = [f for f in frames.values() if "-depth-" in f.frame_id][:1]
    assert np.array_equal(depth.decode_png16(objects[depth_meta.tiers[0].key]),
                          synthetic.depth_frame(0, 320, 180))
    (cloud_meta,) = [f for f in frames.values() if "-pointcloud-" in f.frame_id]
    assert len(pointcloud.decode_draco(objects[cloud_meta.tiers[0].key])) == cloud_meta.width


def test_the_consumer_group_commits_every_record_once_handled(pipeline: Settings) -> None:
    """No lag left: telemetry batches and frames (acked once their segment is delivered)."""
    import time

    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from robostream.schemas import DataType
    from robostream.topics import topic_for

    admin = AdminClient({"bootstrap.servers": pipeline.kafka.bootstrap})
    probe = Consumer({"bootstrap.servers": pipeline.kafka.bootstrap, "group.id": "probe"})
    topics = [topic_for(DataType.TIME_SERIES, pipeline), topic_for(DataType.IMAGES, pipeline)]
    ends = {(t, p): probe.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in topics for p in range(2)}
    probe.close()
    deadline = time.monotonic() + 30
    while True:
        request = ConsumerGroupTopicPartitions(pipeline.processors.app_id,
                                               [TopicPartition(t, p) for t, p in ends])
        result = admin.list_consumer_group_offsets([request])[pipeline.processors.app_id].result(10)
        committed = {(tp.topic, tp.partition): max(tp.offset, 0)  # no commit yet: empty partition
                     for tp in result.topic_partitions}
        if committed == ends or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert committed == ends


def test_the_closed_hour_bundle_is_a_valid_tar_gz(pipeline: Settings) -> None:
    parts = [p for b in _frame_batches(pipeline) for p in b.bundle_parts]
    key = bundles.bundle_key("robot_001", "s1", BOUNDARY * 1_000_000 - HOUR_US)
    hour_parts = sorted({p.part: p for p in parts if p.key == key}.values(), key=lambda p: p.part)
    assert hour_parts[-1].last and not any(p.last for p in hour_parts[:-1])
    members = bundles.read_bundle(b"".join(p.content for p in hour_parts))
    assert any(name.startswith("front/rgb/original/") for name in members)
    assert any(name.startswith("wrist/depth/original/") for name in members)
    assert any(name.startswith("wrist/pointcloud/original/") for name in members)


