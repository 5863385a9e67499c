"""Frame compaction: H.264 segments, 16-bit PNG depth, Draco point clouds, tiers and bundles."""

from __future__ import annotations

import numpy as np
import pytest

from robostream.processors.compaction import bundles, depth, h264, pointcloud, synthetic, tiers
from robostream.processors.compaction.jobs import CompactionJob, CompactionParams, SourceFrame, run_job
from robostream.processors.frames import split_batch
from robostream.processors.records import FrameBatch, FrameKind, StoredObject

#: Lowest PSNR accepted for a decoded H.264 frame (crf 23, veryfast) of a scene-like frame.
PSNR_THRESHOLD_DB = 35.0


def test_h264_segment_decodes_to_every_frame_above_the_psnr_threshold() -> None:
    frames = [synthetic.rgb_frame(i, 320, 180) for i in range(45)]
    data = h264.encode_segment(frames, fps=30, gop=30, crf=23)
    decoded = h264.decode_segment(data)
    assert len(decoded) == 45
    assert min(h264.psnr(a, b) for a, b in zip(frames, decoded, strict=True)) >= PSNR_THRESHOLD_DB
    assert h264.keyframe_indexes(data) == [0, 30]  # a keyframe every 30 frames
    assert h264.encode_segment(frames, fps=30, gop=30, crf=23) == data  # deterministic (replays)


def test_h264_needs_even_sizes() -> None:
    with pytest.raises(ValueError, match="even"):
        h264.encode_segment([np.zeros((9, 16, 3), np.uint8)])


def test_depth_png_is_a_lossless_16_bit_round_trip() -> None:
    image = synthetic.depth_frame(3, 320, 180)
    data = depth.encode_png16(image, level=6)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = depth.decode_png16(data)
    assert back.dtype == np.uint16 and np.array_equal(back, image)
    assert len(data) < image.nbytes


def test_draco_round_trip_keeps_the_points_within_the_quantization_tolerance() -> None:
    cloud = synthetic.depth_to_cloud(synthetic.depth_frame(0, 320, 180), step=2)
    for bits in (11, 14):
        data = pointcloud.encode_draco(cloud, quantization_bits=bits)
        back = pointcloud.decode_draco(data)
        assert len(back) == len(cloud)
        tolerance = pointcloud.quantization_tolerance(cloud.points, bits)
        assert np.abs(back.points - cloud.points).max() <= tolerance * 1.001 + 1e-6
        assert back.colors is not None and np.array_equal(back.colors, cloud.colors)


def test_ply_reader_reads_binary_and_ascii() -> None:
    cloud = pointcloud.PointCloud(np.array([[0, 1, 2], [3.5, 4, 5]], np.float32),
                                  np.array([[1, 2, 3], [4, 5, 6]], np.uint8))
    binary = pointcloud.parse_ply(pointcloud.encode_ply(cloud))
    assert np.array_equal(binary.points, cloud.points) and np.array_equal(binary.colors, cloud.colors)
    ascii_ply = (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                 b"property float z\nend_header\n0 1 2\n3.5 4 5\n")
    assert np.array_equal(pointcloud.parse_ply(ascii_ply).points, cloud.points)


def test_tiers_fit_the_preview_and_thumbnail_boxes() -> None:
    assert tiers.fit(1920, 1080, (640, 360)) == (640, 360)
    assert tiers.fit(1920, 1080, (120, 68)) == (121, 68) or tiers.fit(1920, 1080, (120, 68)) == (120, 68)
    assert tiers.fit(640, 480, (640, 360)) == (480, 360)
    assert tiers.fit(320, 180, (640, 360)) == (320, 180)  # never scaled up
    assert tiers.fit(1281, 721, None, even=True) == (1280, 720)


def _frames(kind: FrameKind, count: int, width: int = 1920, height: int = 1080) -> tuple[SourceFrame, ...]:
    out = []
    for i in range(count):
        ts = 1_800_000_000_000_000 + i * 33_333
        if kind is FrameKind.RGB:
            content, fmt = synthetic.jpeg_bytes(synthetic.rgb_frame(i, width, height)), "jpeg"
        elif kind is FrameKind.DEPTH:
            content, fmt = synthetic.depth_frame(i, width, height).tobytes(), "raw16"
        else:
            content = pointcloud.encode_ply(synthetic.depth_to_cloud(synthetic.depth_frame(i, 160, 90)))
            fmt = "ply"
        out.append(SourceFrame(i, ts, fmt, width, height, len(content), content))
    return tuple(out)


def test_rgb_job_writes_segments_per_tier_and_thumbnails() -> None:
    job = CompactionJob("r1", "s1", "front", FrameKind.RGB, _frames(FrameKind.RGB, 4), CompactionParams())
    result = run_job(job)
    assert len(result.frames) == 4
    meta = result.frames[2]
    sizes = {t.tier: (t.width, t.height) for t in meta.tiers}
    assert sizes == {"original": (1920, 1080), "preview": (640, 360), "thumbnail": (120, 68)}
    original = meta.tier("original")
    assert original is not None and original.segment_index == 2 and original.segment_frames == 4
    assert original.key == "raw/r1/s1/compressed/front/rgb/original/1800000000000000.mp4"
    assert meta.thumbnail is not None and meta.thumbnail[:2] == b"\xff\xd8"
    keys = {o.key for o in result.objects}
    assert {t.key for t in meta.tiers} <= keys
    assert len(h264.decode_segment(next(o.content for o in result.objects if o.key == original.key))) == 4
    assert result.bundle_members == ["front/rgb/original/1800000000000000.mp4"]
    assert set(bundles.read_bundle(result.bundle_content + bundles.bundle_part([], last=True))) == {
        "front/rgb/original/1800000000000000.mp4"}


def test_depth_and_point_cloud_jobs() -> None:
    job = CompactionJob("r1", "s1", "wrist", FrameKind.DEPTH, _frames(FrameKind.DEPTH, 2, 640, 480),
                        CompactionParams())
    result = run_job(job)
    meta = result.frames[0]
    assert {t.tier: (t.width, t.height) for t in meta.tiers} == {
        "original": (640, 480), "preview": (480, 360), "thumbnail": (91, 68)}
    original = next(o for o in result.objects if o.key == meta.tiers[0].key)
    assert np.array_equal(depth.decode_png16(original.content), synthetic.depth_frame(0, 640, 480))
    clouds = run_job(CompactionJob("r1", "s1", "wrist", FrameKind.POINTCLOUD,
                                   _frames(FrameKind.POINTCLOUD, 1), CompactionParams()))
    (cloud_meta,) = clouds.frames
    assert cloud_meta.tiers[0].format == "draco" and cloud_meta.compression_ratio > 0.5
    assert cloud_meta.width == len(pointcloud.decode_draco(clouds.objects[0].content))


def test_bundle_parts_concatenate_into_one_tar_gz() -> None:
    parts = [bundles.bundle_part([("a/1.png", b"one", 10)]),
             bundles.bundle_part([("b/2.mp4", b"x" * 700, 11)]), bundles.bundle_part([], last=True)]
    assert bundles.read_bundle(b"".join(parts)) == {"a/1.png": b"one", "b/2.mp4": b"x" * 700}
    key = bundles.bundle_key("r1", "s1", 1_800_000_000_000_000)
    assert key == "raw/r1/s1/compressed/20270115T08_bundle.tar.gz"


def test_big_batches_are_split_under_the_message_limit_frames_last() -> None:
    objects = [StoredObject(f"k{i}", "image/png", 400, "00", b"x" * 400) for i in range(5)]
    pieces = split_batch(FrameBatch("r", "s", "c", FrameKind.DEPTH, objects, []), 1000)
    assert [len(p.objects) for p in pieces] == [2, 2, 1]
    with pytest.raises(ValueError, match="exceeds"):
        split_batch(FrameBatch("r", "s", "c", FrameKind.DEPTH, objects, []), 300)
