"""Images and blobs to S3 (content type, metadata, multipart, claim-check), frames to MongoDB
(frames_metadata, GridFS) and Redis (frames: keys with presigned URLs that work), and the
processors' FrameBatch (compressed tiers, thumbnails, hourly bundle assembled from its parts)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import gridfs

from robostream.config import Settings
from robostream.processors import (
    BundlePart,
    DerivedCodec,
    FrameBatch,
    FrameKind,
    FrameMeta,
    FrameTier,
    StoredObject,
)
from robostream.schemas import ConfluentSchemaResolver, build_envelope
from robostream.sinks import keys
from robostream.topics import frames_topic
from tests.integration.sinks.helpers import image, produce, produce_raw, running_worker, wait_until

MIB = 1024 * 1024


def tar_gz_member(name: str, data: bytes, last: bool) -> bytes:
    """One gzip member holding one tar member (and the end-of-archive blocks if ``last``)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    member_size = 512 + -(-len(data) // 512) * 512  # header + data padded to 512-byte blocks
    body = raw.getvalue() if last else raw.getvalue()[:member_size]
    return gzip.compress(body)


def test_images_blobs_claim_checks_and_compacted_frames(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, mongo: Any,
    redis_client: Any, s3: Any, tag: str,
) -> None:
    settings = make_settings(
        {"kind": "s3", "topics": ["images", "file", "derived.frames"]},
        {"kind": "mongo", "topics": ["images", "derived.frames"]},
        {"kind": "redis", "topics": ["images", "derived.frames"]},
    )
    settings = settings.model_copy(update={"s3": settings.s3.model_copy(
        update={"multipart_threshold_bytes": 5 * MIB})})
    bucket = settings.s3.bucket
    session = f"obj-{tag}"
    robot = "robot_001"
    ts = round(time.time(), 3)
    ts_us = int(ts * 1_000_000)
    rgb = image(session, 1, kind="rgb", ts_s=ts)
    depth = image(session, 2, kind="depth", ts_s=ts)
    # A claim-check: the gateway already put the blob in S3.
    checked_bytes = b"\xff\xd8claim-checked" * 100
    checked_key = f"raw/{robot}/{session}/claimcheck/blob-3.jpg"
    s3.put_object(Bucket=bucket, Key=checked_key, Body=checked_bytes, ContentType="image/jpeg")
    before = s3.head_object(Bucket=bucket, Key=checked_key)["LastModified"]
    checked = image(session, 3, ts_s=ts + 1, content={
        "bucket": bucket, "key": checked_key, "size": len(checked_bytes),
        "sha256": hashlib.sha256(checked_bytes).hexdigest()})
    big = build_envelope("file", {"name": "calibration dump.bin", "blob": {
        "format": "application/octet-stream", "content": b"\x07" * (6 * MIB)}},
        robot_id=robot, session_id=session, seq=4, timestamp=ts)
    # The processors' output for one RGB frame: an H.264 segment, a thumbnail, a bundle in 2 parts.
    compressed = f"raw/{robot}/{session}/compressed/front/rgb/original/{ts_us + 5}.mp4"
    thumb = f"processed/{robot}/{session}/thumbnails/front/rgb/{ts_us + 5}.jpg"
    bundle = f"raw/{robot}/{session}/compressed/20260101T00_bundle.tar.gz"
    part_a, part_b = tar_gz_member("a.bin", b"A" * 700, False), tar_gz_member("b.bin", b"B" * 300, True)
    mp4, jpeg = b"\x00\x00\x00\x18ftypmp42" * 50, b"\xff\xd8thumb"
    batch = FrameBatch(robot, session, "front", FrameKind.RGB, objects=[
        StoredObject(compressed, "video/mp4", len(mp4), hashlib.sha256(mp4).hexdigest(), mp4),
        StoredObject(thumb, "image/jpeg", len(jpeg), hashlib.sha256(jpeg).hexdigest(), jpeg),
    ], frames=[FrameMeta(
        f"front-rgb-{ts_us + 5}", 9, ts_us + 5, ts_us - ts_us % 3_600_000_000, "jpeg", 4096, 640, 360,
        len(mp4), [FrameTier("original", compressed, "mp4", "libx264 crf=23", 640, 360, len(mp4), 0, 1),
                   FrameTier("thumbnail", thumb, "jpeg", "jpeg q=80", 120, 68, len(jpeg))], jpeg)],
        bundle_parts=[BundlePart(bundle, f"{1:020d}-front-rgb", False, ["a.bin"], part_a),
                      BundlePart(bundle, f"{2:020d}-front-rgb", True, ["b.bin"], part_b)])
    codec = DerivedCodec(resolver)

    with running_worker(settings):
        produce(settings, resolver, [rgb, depth, checked, big])
        produce_raw(settings, frames_topic(settings), codec.encode(frames_topic(settings), batch),
                    f"{robot}/{session}".encode())
        rgb_key = keys.raw_frame_key(robot, session, "front", ts_us, "rgb", "jpeg")
        depth_key = keys.raw_frame_key(robot, session, "front", ts_us, "depth", "png")
        file_key = keys.raw_object_key(robot, session, "file", 4, big.timestamp_us,
                                       "application/octet-stream", "calibration dump.bin")

        def stored(key: str) -> bool:
            try:
                s3.head_object(Bucket=bucket, Key=key)
            except s3.exceptions.ClientError:
                return False
            return True

        wait_until(lambda: all(stored(k) for k in (rgb_key, depth_key, file_key, compressed, thumb,
                                                      bundle)), 60, "every object in S3")
        db = mongo[settings.mongo.database]
        frames = db.frames_metadata
        wait_until(lambda: (frames.find_one({"_id": f"{robot}/{session}/front-{ts_us}"}) or {}).get(
            "s3_urls", {}).keys() >= {"rgb", "depth"}, 60, "the frame document")
        wait_until(lambda: frames.find_one({"_id": f"{robot}/{session}/front-{ts_us + 5}"}), 60,
                   "the compacted frame's document")
        frame_key = keys.frame_key(robot, session, "front", ts_us)
        wait_until(lambda: redis_client.hexists(frame_key, "url:depth"), 60, "the frames: key")
        wait_until(lambda: redis_client.hexists(keys.frame_key(robot, session, "front", ts_us + 5),
                                                "url:thumbnail"), 60, "the compacted frame's key")

    # S3: content type, metadata, multipart above the threshold, claim-check not re-uploaded.
    head = s3.head_object(Bucket=bucket, Key=rgb_key)
    assert head["ContentType"] == "image/jpeg"
    assert head["Metadata"]["robot-id"] == robot and head["Metadata"]["seq"] == "1"
    assert head["Metadata"]["sha256"] == rgb.payload["blob"]["sha256"]
    assert s3.head_object(Bucket=bucket, Key=depth_key)["ContentType"] == "image/png"
    big_head = s3.head_object(Bucket=bucket, Key=file_key)
    assert big_head["ContentLength"] == 6 * MIB
    first_part = s3.head_object(Bucket=bucket, Key=file_key, PartNumber=1)
    assert first_part["PartsCount"] == 2 and first_part["ContentLength"] == 5 * MIB  # multipart
    assert file_key.endswith("_calibration_dump.bin")
    assert s3.head_object(Bucket=bucket, Key=checked_key)["LastModified"] == before
    assert not stored(keys.raw_frame_key(robot, session, "front", int((ts + 1) * 1e6), "rgb", "jpeg"))
    assert s3.get_object(Bucket=bucket, Key=bundle)["Body"].read() == part_a + part_b
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(part_a + part_b))) as tar:
        assert tar.getnames() == ["a.bin", "b.bin"]

    # MongoDB: one document per frame, rgb + depth together, the claim-check's own key.
    doc = frames.find_one({"_id": f"{robot}/{session}/front-{ts_us}"})
    assert doc["s3_urls"] == {"rgb": f"s3://{bucket}/{rgb_key}", "depth": f"s3://{bucket}/{depth_key}"}
    assert doc["metadata"] == {"width": 640, "height": 360, "format": "jpeg", "size_bytes": 4096,
                               "compression": "jpeg"}
    assert doc["cached"] is True and doc["cache_expiry"] is not None
    claim_doc = frames.find_one({"session_id": session, "streams.rgb.seq": 3})
    assert claim_doc["s3_urls"]["rgb"] == f"s3://{bucket}/{checked_key}"
    compacted = frames.find_one({"_id": f"{robot}/{session}/front-{ts_us + 5}"})
    assert compacted["s3_urls"]["thumbnail"] == f"s3://{bucket}/{thumb}"
    assert compacted["compressed"]["rgb"]["tiers"][0]["format"] == "mp4"
    file_id = compacted["thumbnail_file_ids"]["rgb"]
    assert gridfs.GridFSBucket(db, "thumbnails").open_download_stream(file_id).read() == jpeg
    index_keys = [list(ix["key"]) for ix in frames.list_indexes()]
    assert ["robot_id", "session_id", "timestamp"] in index_keys

    # Redis: presigned URLs that S3 honours, metadata, TTL.
    cached = redis_client.hgetall(frame_key)
    with urllib.request.urlopen(cached[b"url:rgb"].decode(), timeout=10) as response:
        assert response.read() == rgb.payload["blob"]["content"]
    assert json.loads(cached[b"meta:depth"])["format"] == "png"
    assert 0 < redis_client.ttl(frame_key) <= settings.redis.frame_ttl_s
