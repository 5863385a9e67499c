"""Deterministic names: S3 keys, Redis keys, Mongo ids -- and ids validated before use."""

from __future__ import annotations

import pytest

from robostream.sinks import keys

TS = 1_718_000_000_123_456


def test_raw_frame_keys_follow_the_seed_layout_per_camera() -> None:
    assert keys.raw_frame_key("robot_001", "s1", "front", TS, "rgb", "jpeg") == (
        "raw/robot_001/s1/frames/front/1718000000123456_rgb.jpg")
    assert keys.raw_frame_key("robot_001", "s1", "wrist", TS, "depth", "png").endswith(
        "/frames/wrist/1718000000123456_depth.png")
    assert keys.raw_frame_key("robot_001", "s1", "front", TS, "pointcloud", "ply").endswith(
        "_pointcloud.ply")


def test_other_binary_types_go_under_their_data_type() -> None:
    assert keys.raw_object_key("r1", "s1", "audio", 7, TS, "wav") == (
        "raw/r1/s1/audio/1718000000123456_7.wav")
    assert keys.raw_object_key("r1", "s1", "file", 8, TS, "application/octet-stream",
                               "calib ration (v2).bin") == (
        "raw/r1/s1/file/1718000000123456_8_calib_ration_v2_.bin")


def test_keys_chosen_by_the_processors_must_stay_in_their_robot_session() -> None:
    good = "raw/r1/s1/compressed/front/rgb/original/1718000000123456.mp4"
    assert keys.validate_object_key(good, "r1", "s1") == good
    assert keys.validate_object_key("processed/r1/s1/thumbnails/front/rgb/1.jpg", "r1", "s1")
    for bad in ("raw/r2/s1/x.mp4", "raw/r1/s1/../../r2/s1/x", "/raw/r1/s1/x", "raw/r1/s1//x",
                "raw/r1/s1/x\x00", "other/r1/s1/x", "raw/r1/s1/" + "x" * 1100):
        with pytest.raises(ValueError, match="unsafe S3 key"):
            keys.validate_object_key(bad, "r1", "s1")


def test_names_are_the_same_every_time() -> None:
    assert keys.record_doc_id("r1", "s1", "audio", 42) == "r1/s1/audio/42"
    assert keys.telemetry_doc_id("r1", "s1", 42, 60_000_000) == "r1/s1/time_series/42/60000000"
    assert keys.frame_doc_id("r1", "s1", "front", TS) == "r1/s1/front-1718000000123456"
    assert keys.aggregation_doc_id("r1", "s1", "pose.position.x", "1m", 60_000_000) == (
        "r1/s1/pose.position.x/1m/60000000")


def test_redis_keys_and_channels() -> None:
    assert keys.latest_key("robot_001", "s1") == "telemetry:robot_001:s1:latest"
    assert keys.frame_key("robot_001", "s1", "front", TS) == "frames:robot_001:s1:front-1718000000123456"
    assert keys.stats_key("robot_001", "s1", "imu.linear_acceleration.z", "1s") == (
        "stats:robot_001:s1:imu.linear_acceleration.z:1s")
    assert keys.live_channels("robot_001", "s1", "time_series") == (
        "live:robot_001:s1", "live:robot_001:s1:time_series")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "a..b", "x:y", "", "space here", "*", "a\x00"])
@pytest.mark.parametrize("build", [
    lambda bad: keys.raw_frame_key(bad, "s1", "front", TS, "rgb", "jpeg"),
    lambda bad: keys.raw_frame_key("r1", bad, "front", TS, "rgb", "jpeg"),
    lambda bad: keys.raw_frame_key("r1", "s1", bad, TS, "rgb", "jpeg"),
    lambda bad: keys.raw_object_key(bad, "s1", "zip", 1, TS, "zip"),
    lambda bad: keys.validate_object_key("raw/r1/s1/x", "r1", bad),
    lambda bad: keys.telemetry_doc_id("r1", bad, 1, 0),
    lambda bad: keys.latest_key(bad, "s1"),
    lambda bad: keys.frame_key("r1", "s1", bad, TS),
    lambda bad: keys.stats_key("r1", bad, "m", "1s"),
    lambda bad: keys.live_channels(bad, "s1", "images"),
    lambda bad: keys.record_doc_id("r1", bad, "time_series", 1),
    lambda bad: keys.session_doc_id(bad, "s1"),
])
def test_unsafe_ids_never_become_keys(build: object, bad: str) -> None:
    with pytest.raises(ValueError, match=r"invalid|unsafe"):
        build(bad)  # type: ignore[operator]


@pytest.mark.parametrize("metric", ["a:b", "a b", "a/b", "", "1abc", "a..b", "x" * 200, "*"])
def test_unsafe_metric_names_never_become_keys(metric: str) -> None:
    with pytest.raises(ValueError, match="invalid metric"):
        keys.stats_key("r1", "s1", metric, "1m")


@pytest.mark.parametrize(("fmt", "ext", "content_type"), [
    ("jpeg", "jpg", "image/jpeg"), ("png", "png", "image/png"), ("ply", "ply", "application/ply"),
    ("tar.gz", "tar.gz", "application/gzip"), ("mp4", "mp4", "video/mp4"),
    ("image/webp", "webp", "image/webp"), ("application/octet-stream", "bin", "application/octet-stream"),
    ("weird+fmt", "weird_fmt", "application/octet-stream"),
])
def test_extensions_and_content_types(fmt: str, ext: str, content_type: str) -> None:
    assert keys.extension_and_type(fmt) == (ext, content_type)
