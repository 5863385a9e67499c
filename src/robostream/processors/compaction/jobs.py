"""One compaction task: source frames of one camera in, encoded objects and frame metadata out.

:func:`run_job` is what the process pool runs (everything here is picklable and pure, except the
read of claim-checked source blobs from S3). S3 keys are chosen here, deterministically, so a
replay after a restart produces the same keys and bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from robostream.processors.compaction import bundles, depth, h264, pointcloud, tiers
from robostream.processors.frame_records import FrameKind, FrameMeta, FrameTier, StoredObject, TierName
from robostream.times import HOUR_US

CONTENT_TYPES = {"mp4": "video/mp4", "png": "image/png", "jpeg": "image/jpeg",
                 "draco": "application/vnd.google.draco"}


@dataclass(frozen=True, slots=True)
class S3Access:
    """How a pool process reads claim-checked source blobs."""

    endpoint: str
    region: str
    access_key: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class SourceFrame:
    """One source frame of the images topic: inline bytes or a claim-check ``(bucket, key)``."""

    seq: int
    timestamp: int
    fmt: str
    width: int
    height: int
    size: int
    content: bytes | None = None
    ref: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class CompactionParams:
    """Encoder settings (from ``settings.processors``)."""

    gop: int = 30
    crf: int = 23
    preset: str = "veryfast"
    preview: str = "640x360"
    thumbnail: str = "120x68"
    png_level: int = 6
    draco_bits: int = 14
    draco_level: int = 7
    bundles: bool = True
    s3: S3Access | None = None


@dataclass(frozen=True, slots=True)
class CompactionJob:
    """Frames of one camera and kind to encode together (an H.264 segment, or a group)."""

    robot_id: str
    session_id: str
    camera_id: str
    kind: FrameKind
    frames: tuple[SourceFrame, ...]
    params: CompactionParams
    in_bundle: bool = True


@dataclass(slots=True)
class CompactionResult:
    """What a job produced, and the seconds it spent per tier (throughput metrics)."""

    objects: list[StoredObject]
    frames: list[FrameMeta]
    bundle_members: list[str] = field(default_factory=list)
    bundle_content: bytes = b""
    seconds: dict[str, float] = field(default_factory=dict)
    source_bytes: int = 0
    raw_bytes: int = 0  # uncompressed pixels / points of the sources


# --- keys -----------------------------------------------------------------------------------------


def compressed_prefix(robot_id: str, session_id: str) -> str:
    return f"raw/{robot_id}/{session_id}/compressed/"


def segment_key(job: CompactionJob, tier: TierName, first_ts: int) -> str:
    return f"{compressed_prefix(job.robot_id, job.session_id)}{job.camera_id}/rgb/{tier.value}/{first_ts}.mp4"


def depth_key(job: CompactionJob, tier: TierName, ts: int) -> str:
    return f"{compressed_prefix(job.robot_id, job.session_id)}{job.camera_id}/depth/{tier.value}/{ts}.png"


def cloud_key(job: CompactionJob, ts: int) -> str:
    """A point cloud has one tier, the original (of its depth frame): in that folder, so the S3 sink
    writes it in the cold class like the other originals."""
    prefix = compressed_prefix(job.robot_id, job.session_id)
    return f"{prefix}{job.camera_id}/pointcloud/{TierName.ORIGINAL.value}/{ts}.drc"


def thumbnail_key(job: CompactionJob, ts: int) -> str:
    return f"processed/{job.robot_id}/{job.session_id}/thumbnails/{job.camera_id}/{job.kind.value}/{ts}.jpg"


def frame_id(camera_id: str, kind: FrameKind, ts: int) -> str:
    return f"{camera_id}-{kind.value}-{ts}"


def stored(key: str, fmt: str, content: bytes) -> StoredObject:
    return StoredObject(key, CONTENT_TYPES[fmt], len(content), hashlib.sha256(content).hexdigest(), content)


# --- sources --------------------------------------------------------------------------------------

_s3_client: Any = None


def source_bytes(frame: SourceFrame, access: S3Access | None) -> bytes:
    """The source blob: inline, or read from S3 (claim-check; reading is all processors do there)."""
    if frame.content is not None:
        return frame.content
    if frame.ref is None or access is None:
        raise ValueError(f"frame seq {frame.seq} has neither inline content nor a readable claim-check")
    global _s3_client
    if _s3_client is None:
        import boto3

        _s3_client = boto3.client(
            "s3", endpoint_url=access.endpoint, region_name=access.region,
            aws_access_key_id=access.access_key, aws_secret_access_key=access.secret_key,
        )
    bucket, key = frame.ref
    body: bytes = _s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def decode_rgb(data: bytes, frame: SourceFrame) -> np.ndarray:
    """A source RGB blob as (h, w, 3) uint8: any Pillow format, or raw ``rgb8``/``rgb24``."""
    if frame.fmt.lower() in ("raw", "rgb", "rgb8", "rgb24"):
        return np.frombuffer(data, np.uint8).reshape(frame.height, frame.width, 3)
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


# --- the pool -------------------------------------------------------------------------------------


#: Scheduling priority of the frame-encoding processes: encoding is batch work, so on a busy
#: machine the live path (gateway, Redis sink, API) gets the CPU first.
POOL_NICENESS = 10


def pool_initializer(parent_pid: int) -> None:
    """Run in each pool process: lower its priority (:data:`POOL_NICENESS`); exit when the worker
    that started it is gone (even SIGKILLed)."""
    with contextlib.suppress(OSError):
        os.nice(POOL_NICENESS)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# --- jobs -----------------------------------------------------------------------------------------


def run_job(job: CompactionJob) -> CompactionResult:
    """Encode one job (the process-pool entry point)."""
    if job.kind is FrameKind.RGB:
        result = _rgb_segment(job)
    elif job.kind is FrameKind.DEPTH:
        result = _depth_frames(job)
    else:
        result = _point_clouds(job)
    if job.in_bundle and job.params.bundles and result.bundle_members:
        started = time.perf_counter()
        originals = [o for o in result.objects if o.key in set(result.bundle_members)]
        prefix = compressed_prefix(job.robot_id, job.session_id)
        mtime = job.frames[0].timestamp // 1_000_000
        result.bundle_content = bundles.bundle_part(
            [(o.key.removeprefix(prefix), o.content, mtime) for o in originals]
        )
        result.bundle_members = [o.key.removeprefix(prefix) for o in originals]
        result.seconds["bundle"] = time.perf_counter() - started
    return result


def _fps(frames: Sequence[SourceFrame]) -> float:
    if len(frames) < 2:
        return 30.0
    gaps = np.diff([f.timestamp for f in frames])
    median = float(np.median(gaps))
    return 30.0 if median <= 0 else min(240.0, max(1.0, 1e6 / median))


def _rgb_segment(job: CompactionJob) -> CompactionResult:
    p = job.params
    started = time.perf_counter()
    sources = [source_bytes(f, p.s3) for f in job.frames]
    images = [decode_rgb(data, f) for data, f in zip(sources, job.frames, strict=True)]
    seconds = {"decode": time.perf_counter() - started}
    height, width = images[0].shape[:2]
    first_ts = job.frames[0].timestamp
    objects: list[StoredObject] = []
    tier_info: list[tuple[TierName, str, int, int, int]] = []  # tier, key, w, h, size
    label = h264.compression_label(p.crf, p.preset, p.gop)
    fps = _fps(job.frames)
    for tier in tiers.tier_sizes(p.preview, p.thumbnail)[:2]:
        w, h = tiers.fit(width, height, tier.box, even=True)
        if tier.name is TierName.PREVIEW and (w, h) == tier_info[0][2:4]:
            tier_info.append((tier.name, tier_info[0][1], w, h, tier_info[0][4]))  # same as original
            continue
        started = time.perf_counter()
        scaled = [tiers.resize_rgb(img, (w, h)) for img in images]
        data = h264.encode_segment(scaled, fps=fps, gop=p.gop, crf=p.crf, preset=p.preset)
        seconds[tier.name.value] = time.perf_counter() - started
        key = segment_key(job, tier.name, first_ts)
        objects.append(stored(key, "mp4", data))
        tier_info.append((tier.name, key, w, h, len(data)))
    started = time.perf_counter()
    thumb_box = tiers.tier_sizes(p.preview, p.thumbnail)[2].box
    tw, th = tiers.fit(width, height, thumb_box)
    thumbs = [tiers.jpeg(tiers.resize_rgb(img, (tw, th))) for img in images]
    seconds["thumbnail"] = time.perf_counter() - started
    n = len(images)
    frames = []
    for i, (frame, thumb) in enumerate(zip(job.frames, thumbs, strict=True)):
        tkey = thumbnail_key(job, frame.timestamp)
        objects.append(stored(tkey, "jpeg", thumb))
        frame_tiers = [
            FrameTier(name.value, key, "mp4", label, w, h, size, i, n)
            for name, key, w, h, size in tier_info
        ]
        frame_tiers.append(FrameTier(TierName.THUMBNAIL.value, tkey, "jpeg", "jpeg q=85", tw, th, len(thumb)))
        frames.append(FrameMeta(
            frame_id(job.camera_id, job.kind, frame.timestamp), frame.seq, frame.timestamp,
            frame.timestamp - frame.timestamp % HOUR_US, frame.fmt, frame.size, width, height,
            round(tier_info[0][4] / n), frame_tiers, thumb,
        ))
    return CompactionResult(objects, frames, [tier_info[0][1]], seconds=seconds,
                            source_bytes=sum(f.size for f in job.frames),
                            raw_bytes=sum(img.nbytes for img in images))


def _depth_frames(job: CompactionJob) -> CompactionResult:
    p = job.params
    sizes = tiers.tier_sizes(p.preview, p.thumbnail)
    objects: list[StoredObject] = []
    frames: list[FrameMeta] = []
    originals: list[str] = []
    seconds: dict[str, float] = {}
    raw = 0
    label = f"png16 zlib level={p.png_level}"
    for frame in job.frames:
        started = time.perf_counter()
        image = depth.decode_depth(source_bytes(frame, p.s3), frame.fmt, frame.width, frame.height)
        seconds["decode"] = seconds.get("decode", 0.0) + time.perf_counter() - started
        raw += image.nbytes
        height, width = image.shape
        frame_tiers: list[FrameTier] = []
        for tier in sizes[:2]:
            w, h = tiers.fit(width, height, tier.box)
            if tier.name is TierName.PREVIEW and (w, h) == (width, height):
                first = frame_tiers[0]
                frame_tiers.append(
                    FrameTier(tier.name.value, first.key, "png", label, w, h, first.size_bytes)
                )
                continue
            started = time.perf_counter()
            data = depth.encode_png16(tiers.resize_depth(image, (w, h)), p.png_level)
            seconds[tier.name.value] = seconds.get(tier.name.value, 0.0) + time.perf_counter() - started
            key = depth_key(job, tier.name, frame.timestamp)
            objects.append(stored(key, "png", data))
            frame_tiers.append(FrameTier(tier.name.value, key, "png", label, w, h, len(data)))
        started = time.perf_counter()
        tw, th = tiers.fit(width, height, sizes[2].box)
        thumb = tiers.jpeg(tiers.depth_preview_8bit(tiers.resize_depth(image, (tw, th))))
        seconds["thumbnail"] = seconds.get("thumbnail", 0.0) + time.perf_counter() - started
        tkey = thumbnail_key(job, frame.timestamp)
        objects.append(stored(tkey, "jpeg", thumb))
        frame_tiers.append(
            FrameTier(TierName.THUMBNAIL.value, tkey, "jpeg", "jpeg q=85 8-bit", tw, th, len(thumb))
        )
        originals.append(frame_tiers[0].key)
        frames.append(FrameMeta(
            frame_id(job.camera_id, job.kind, frame.timestamp), frame.seq, frame.timestamp,
            frame.timestamp - frame.timestamp % HOUR_US, frame.fmt, frame.size, width, height,
            frame_tiers[0].size_bytes, frame_tiers, thumb,
        ))
    return CompactionResult(objects, frames, originals, seconds=seconds,
                            source_bytes=sum(f.size for f in job.frames), raw_bytes=raw)


def _point_clouds(job: CompactionJob) -> CompactionResult:
    p = job.params
    objects: list[StoredObject] = []
    frames: list[FrameMeta] = []
    seconds: dict[str, float] = {}
    raw = 0
    label = f"draco qp={p.draco_bits} cl={p.draco_level}"
    for frame in job.frames:
        cloud = pointcloud.decode_source(source_bytes(frame, p.s3), frame.fmt)
        raw += cloud.points.nbytes + (cloud.colors.nbytes if cloud.colors is not None else 0)
        started = time.perf_counter()
        data = pointcloud.encode_draco(cloud, quantization_bits=p.draco_bits, compression_level=p.draco_level)
        seconds["original"] = seconds.get("original", 0.0) + time.perf_counter() - started
        key = cloud_key(job, frame.timestamp)
        objects.append(stored(key, "draco", data))
        tier = FrameTier(TierName.ORIGINAL.value, key, "draco", label, len(cloud), 1, len(data))
        frames.append(FrameMeta(
            frame_id(job.camera_id, job.kind, frame.timestamp), frame.seq, frame.timestamp,
            frame.timestamp - frame.timestamp % HOUR_US, frame.fmt, frame.size, len(cloud), 1,
            len(data), [tier], None,
        ))
    return CompactionResult(objects, frames, [o.key for o in objects], seconds=seconds,
                            source_bytes=sum(f.size for f in job.frames), raw_bytes=raw)
