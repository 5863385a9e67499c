"""Retention on the real stack: TTL indexes on every growing MongoDB collection from config (and
the TTL monitor deleting old data, thumbnails with their frames), the bucket's S3 lifecycle rules
written at start-up, objects in their tier's storage class, and frames_metadata.frame_number."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import gridfs
import numpy as np

from robostream.config import Settings
from robostream.processors import (
    BundlePart,
    DerivedCodec,
    FrameBatch,
    FrameKind,
    FrameMeta,
    FrameTier,
    MetricStats,
    StoredObject,
    WindowStats,
)
from robostream.processors.compaction.jobs import CompactionJob, CompactionParams, SourceFrame, run_job
from robostream.schemas import ConfluentSchemaResolver
from robostream.sinks import keys
from robostream.sinks.lifecycle import apply_lifecycle, current_rules
from robostream.sinks.mongo import thumbnail_file_id
from robostream.sinks.s3 import s3_client
from robostream.topics import StatsResolution, frames_topic, stats_topic
from tests.integration.sinks.helpers import (
    image,
    produce,
    produce_raw,
    running_worker,
    telemetry,
    wait_until,
)

DAY = 86_400
ROBOT = "robot_001"
HOT = ("telemetry", "telemetry_lod", "frames_metadata", "aggregations")


def ttl_of(db: Any) -> dict[str, tuple[str, int]]:
    """``{collection: (field, expireAfterSeconds)}`` of every TTL index in ``db``."""
    found = {}
    for name in db.list_collection_names():
        for index in db[name].list_indexes():
            if "expireAfterSeconds" in index:
                found[name] = (next(iter(index["key"])), int(index["expireAfterSeconds"]))
    return found


def expected_ttl(hot_days: int) -> dict[str, tuple[str, int]]:
    return {"telemetry": ("timestamp", hot_days * DAY), "telemetry_lod": ("timestamp", hot_days * DAY),
            "frames_metadata": ("timestamp", hot_days * DAY),
            "aggregations": ("window_start", hot_days * DAY),
            "thumbnails.files": ("timestamp", hot_days * DAY),
            "thumbnails.chunks": ("timestamp", hot_days * DAY),
            "sessions": ("last_activity", 365 * DAY)}


def window(session: str, start_s: float) -> WindowStats:
    start = int(start_s // 60 * 60 * 1_000_000)
    return WindowStats(ROBOT, session, StatsResolution.MINUTE, start, start + 60_000_000,
                       [MetricStats("pose.position.x", 3, 0.1, 0.3, 0.2, 0.08, 0.3, start + 1000)])


def thumbnail_id(session: str, ts_s: float) -> str:
    ts_us = image(session, 1, kind="thumbnail", ts_s=ts_s).timestamp_us  # as the codec rounds it
    return thumbnail_file_id(keys.frame_doc_id(ROBOT, session, "front", ts_us), "thumbnail")


def stored_of(db: Any, session: str, ts_s: float) -> dict[str, int]:
    """How many documents of ``session`` each growing collection holds."""
    counts = {name: db[name].count_documents({"session_id": session}) for name in HOT}
    file_id = thumbnail_id(session, ts_s)
    counts["thumbnails.files"] = db["thumbnails.files"].count_documents({"_id": file_id})
    counts["thumbnails.chunks"] = db["thumbnails.chunks"].count_documents({"files_id": file_id})
    counts["sessions"] = db.sessions.count_documents({"session_id": session})
    return counts


def test_ttl_on_every_growing_collection_follows_config_and_the_monitor_deletes_old_data(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, mongo: Any, tag: str,
) -> None:
    thirty = make_settings({"kind": "mongo", "topics": ["images", "time_series", "derived.stats_1m"]})
    sixty = thirty.model_copy(update={"mongo": thirty.mongo.model_copy(update={"hot_retention_days": 60})})
    db = mongo[thirty.mongo.database]
    now = time.time()
    moments = {f"ret-old-{tag}": now - 40 * DAY, f"ret-new-{tag}": now}
    codec = DerivedCodec(resolver)
    topic = stats_topic(StatsResolution.MINUTE, thirty)

    # Kept 60 days: data 40 days old lands and stays.
    with running_worker(sixty):
        for session, moment in moments.items():
            produce(thirty, resolver, [image(session, 0, ts_s=moment),
                                       image(session, 1, kind="thumbnail", ts_s=moment, size=900),
                                       *telemetry(session, 3, first_seq=2, start_s=moment)])
            produce_raw(thirty, topic, codec.encode(topic, window(session, moment)),
                        f"{ROBOT}/{session}".encode())
        missing = lambda: [(s, k) for s, m in moments.items()  # noqa: E731
                           for k, n in stored_of(db, s, m).items() if not n]
        try:
            wait_until(lambda: not missing(), 120, "both sessions in every growing collection")
        except AssertionError:
            raise AssertionError(f"not landed (session, collection): {missing()}") from None
    assert ttl_of(db) == expected_ttl(60)

    # The worker restarted with the configured 30 days: every TTL follows.
    with running_worker(thirty):
        wait_until(lambda: ttl_of(db) == expected_ttl(30), 30, "the TTL indexes at 30 days")
    assert ttl_of(db) == expected_ttl(30)

    # The server's TTL monitor (every 60 s) deletes the 40-day-old data, thumbnail bytes included;
    # the fresh data stays, and so does the old session's summary (kept for the cold period).
    old, new = moments.items()
    gone = {name: 0 for name in (*HOT, "thumbnails.files", "thumbnails.chunks")}
    wait_until(lambda: {k: v for k, v in stored_of(db, *old).items() if k != "sessions"} == gone, 150,
               "the TTL monitor to delete the old session's data")
    assert stored_of(db, *old)["sessions"] == 1
    assert min(stored_of(db, *new).values()) > 0
    fresh = gridfs.GridFSBucket(db, "thumbnails").open_download_stream(thumbnail_id(*new)).read()
    assert fresh == image(new[0], 1, kind="thumbnail", size=900).payload["blob"]["content"]


def test_thumbnails_stored_without_a_date_are_dated_by_their_frame_at_start_up(
    make_settings: Callable[..., Settings], mongo: Any, tag: str,
) -> None:
    settings = make_settings({"kind": "mongo", "topics": ["images"]})
    db = mongo[settings.mongo.database]
    ts_us = (int(time.time()) - 5) * 1_000_000
    file_id = thumbnail_file_id(keys.frame_doc_id(ROBOT, f"undated-{tag}", "front", ts_us), "rgb")
    # as robostream stored thumbnails before: GridFS's own upload, two chunks, no date on them
    gridfs.GridFSBucket(db, "thumbnails").upload_from_stream_with_id(
        file_id, "front-rgb.jpg", b"\xff\xd8" * 150_000, metadata={"timestamp_us": ts_us})
    with running_worker(settings):
        wait_until(lambda: db["thumbnails.files"].find_one({"_id": file_id, "timestamp": {"$exists": True}}),
                   30, "the old thumbnail dated")
    frame_time = datetime.fromtimestamp(ts_us / 1e6, UTC).replace(tzinfo=None)  # a naive client reads UTC
    assert db["thumbnails.files"].find_one({"_id": file_id})["timestamp"] == frame_time
    assert [c["timestamp"] for c in db["thumbnails.chunks"].find({"files_id": file_id})] == [frame_time] * 2


def frame_numbers(db: Any, session: str) -> dict[str, list[tuple[int, int]]]:
    """``{camera: [(timestamp µs, frame_number), ...]}`` in time order."""
    out: dict[str, list[tuple[int, int]]] = {}
    for doc in db.frames_metadata.find({"session_id": session}).sort("timestamp_us", 1):
        out.setdefault(doc["camera_id"], []).append((doc["timestamp_us"], doc["frame_number"]))
    return out


def compacted_depth(session: str, frames: list[tuple[int, int]]) -> FrameBatch:
    """What the processors emit for the front camera's depth frames ``(timestamp µs, seq)``."""
    metas = []
    for ts_us, seq in frames:
        key = f"raw/{ROBOT}/{session}/compressed/front/depth/original/{ts_us}.png"
        metas.append(FrameMeta(f"front-depth-{ts_us}", seq, ts_us, ts_us - ts_us % 3_600_000_000, "png",
                               512, 640, 360, 300, [FrameTier("original", key, "png", "png", 640, 360, 300)]))
    return FrameBatch(ROBOT, session, "front", FrameKind.DEPTH, [], metas)


def test_frame_number_increases_per_camera_and_is_the_same_after_a_replay(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, mongo: Any, tag: str,
) -> None:
    settings = make_settings({"kind": "mongo", "topics": ["images", "derived.frames"]})
    session = f"frn-{tag}"
    t0 = round(time.time(), 3)
    # The SDK numbers envelopes in send order: front sends rgb then depth, wrist depth then rgb.
    # The wrist's records reach Kafka rgb first: the number must not depend on arrival order.
    sent: list[Any] = []
    expected: dict[str, list[tuple[int, int]]] = {"front": [], "wrist": []}
    front_depth: list[tuple[int, int]] = []
    seq = 0
    for i in range(6):
        ts = t0 + i / 30
        for camera, kinds in (("front", ("rgb", "depth")), ("wrist", ("depth", "rgb"))):
            records = [image(session, seq + j, kind=kind, camera=camera, ts_s=ts, size=512)
                       for j, kind in enumerate(kinds)]
            expected[camera].append((records[0].timestamp_us, seq))
            sent.extend(records if camera == "front" else records[::-1])
            if camera == "front":
                front_depth.append((records[1].timestamp_us, records[1].seq))
            seq += 2
    topic = frames_topic(settings)
    with running_worker(settings):
        produce(settings, resolver, sent)
        # the processors' compacted depth of the front camera, carrying each source record's seq
        compacted = DerivedCodec(resolver).encode(topic, compacted_depth(session, front_depth))
        produce_raw(settings, topic, compacted, f"{ROBOT}/{session}".encode())
        db = mongo[settings.mongo.database]
        wait_until(lambda: db.frames_metadata.count_documents(
            {"session_id": session, "s3_urls.rgb": {"$exists": True},
             "s3_urls.depth": {"$exists": True}}) == 12, 60, "12 frames with rgb and depth")
        wait_until(lambda: db.frames_metadata.count_documents(
            {"session_id": session, "compressed.depth": {"$exists": True}}) == 6, 60, "6 compacted frames")
    numbers = frame_numbers(db, session)
    assert numbers == expected
    for camera, frames in numbers.items():
        assert [n for _, n in frames] == sorted({n for _, n in frames}), camera  # increasing

    # A replay of the same records (another connector reads the topics from the start) into
    # another database numbers every frame the same.
    replay = settings.model_copy(update={
        "mongo": settings.mongo.model_copy(update={"database": f"{settings.mongo.database}_replay"}),
        "connectors": [settings.connectors[0].model_copy(update={"name": f"mongo-replay-{tag}"})]})
    replayed = mongo[replay.mongo.database]
    try:
        with running_worker(replay):
            wait_until(lambda: replayed.frames_metadata.count_documents(
                {"session_id": session, "s3_urls.depth": {"$exists": True}, "s3_urls.rgb": {"$exists": True},
                 "compressed.depth": {"$exists": True}}) == 6, 60, "the replayed front frames")
            wait_until(lambda: replayed.frames_metadata.count_documents(
                {"session_id": session, "s3_urls.depth": {"$exists": True},
                 "s3_urls.rgb": {"$exists": True}}) == 12, 60, "the replayed frames")
        assert frame_numbers(replayed, session) == numbers
    finally:
        mongo.drop_database(replay.mongo.database)


def frame_batch(session: str, ts_us: int) -> tuple[FrameBatch, dict[str, str]]:
    """The processors' output for one RGB frame: original and preview tiers, a thumbnail, a bundle."""
    base = f"raw/{ROBOT}/{session}/compressed/front/rgb"
    names = {"original": f"{base}/original/{ts_us}.mp4", "preview": f"{base}/preview/{ts_us}.mp4",
             "thumbnail": f"processed/{ROBOT}/{session}/thumbnails/front/rgb/{ts_us}.jpg",
             "bundle": f"raw/{ROBOT}/{session}/compressed/20260101T00_bundle.tar.gz"}
    blobs = {"original": b"O" * 3000, "preview": b"P" * 1000, "thumbnail": b"\xff\xd8thumb"}
    objects = [StoredObject(names[k], "video/mp4" if k != "thumbnail" else "image/jpeg", len(b),
                            hashlib.sha256(b).hexdigest(), b) for k, b in blobs.items()]
    tiers = [FrameTier(k, names[k], "mp4", "x", 640, 360, len(blobs[k]), 0, 1)
             for k in ("original", "preview")]
    meta = FrameMeta(f"front-rgb-{ts_us}", 1, ts_us, ts_us - ts_us % 3_600_000_000, "jpeg", 4096, 640,
                     360, 3000, tiers)
    part = BundlePart(names["bundle"], f"{1:020d}-front-rgb", True, ["a.bin"], b"\x1f\x8bpart")
    return FrameBatch(ROBOT, session, "front", FrameKind.RGB, objects, [meta], [part]), names


def cloud_batches(session: str, ts_us: int) -> tuple[list[FrameBatch], dict[str, str]]:
    """A depth camera's point cloud as the processors compact it, and one keyed as processors
    did before the ``original/`` folder (``…/pointcloud/{µs}.drc``)."""
    points = np.arange(300, dtype="<f4").tobytes()
    job = CompactionJob(ROBOT, session, "lidar", FrameKind.POINTCLOUD,
                        (SourceFrame(1, ts_us, "xyz", 100, 1, len(points), points),), CompactionParams())
    result = run_job(job)
    legacy = f"raw/{ROBOT}/{session}/compressed/lidar/pointcloud/{ts_us + 1}.drc"
    old = StoredObject(legacy, "application/vnd.google.draco", 4, hashlib.sha256(b"DRCO").hexdigest(),
                       b"DRCO")
    batches = [FrameBatch(ROBOT, session, "lidar", FrameKind.POINTCLOUD, result.objects, result.frames),
               FrameBatch(ROBOT, session, "lidar", FrameKind.POINTCLOUD, [old], [])]
    return batches, {"cloud": result.objects[0].key, "legacy_cloud": legacy}


def classes_in(s3: Any, bucket: str) -> dict[str, str | None]:
    """``{key: storage class}`` of the bucket's objects, as S3 lists them."""
    return {o["Key"]: o.get("StorageClass") for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def remove_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


def test_lifecycle_rules_written_at_start_up_once_and_objects_in_their_tier(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, s3: Any, tag: str,
) -> None:
    bucket = f"lc-{tag}"
    s3.create_bucket(Bucket=bucket)
    settings = make_settings({"kind": "s3", "topics": ["images", "derived.frames"]})
    settings = settings.model_copy(update={"s3": settings.s3.model_copy(update={"bucket": bucket})})
    session = f"lc-{tag}"
    ts = round(time.time(), 3)
    ts_us = int(ts * 1_000_000)
    batch, names = frame_batch(session, ts_us)
    clouds, cloud_names = cloud_batches(session, ts_us)
    names |= cloud_names
    raw_frame = keys.raw_frame_key(ROBOT, session, "front", ts_us, "rgb", "jpeg")
    try:
        with running_worker(settings):
            rules = wait_until(lambda: current_rules(s3, bucket), 30, "the bucket's lifecycle rules")
            produce(settings, resolver, [image(session, 0, ts_s=ts)])
            codec = DerivedCodec(resolver)
            for each in (batch, *clouds):
                produce_raw(settings, frames_topic(settings), codec.encode(frames_topic(settings), each),
                            f"{ROBOT}/{session}".encode())
            wait_until(lambda: {raw_frame, *names.values()} <= classes_in(s3, bucket).keys(), 60,
                       "the objects")

        by_prefix = {r["Filter"]["Prefix"]: r for r in rules}
        raw = by_prefix["raw/"]
        assert raw["Expiration"] == {"Days": 365}
        if "Transitions" in raw:  # a store with storage tiers (AWS)
            assert raw["Transitions"] == [{"Days": 30, "StorageClass": "STANDARD_IA"},
                                          {"Days": 90, "StorageClass": "GLACIER_IR"}]
        else:  # SeaweedFS (and MinIO without remote tiers) refuse transitions
            assert raw["ID"] == "robostream-raw-no-transitions"
        assert by_prefix["processed/"]["Expiration"] == {"Days": 30}
        assert by_prefix[""]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}

        # Another start-up changes nothing; a changed config is written.
        client = s3_client(settings)
        assert apply_lifecycle(client, settings) == "unchanged"
        assert current_rules(s3, bucket) == rules
        longer = settings.model_copy(update={"retention": settings.retention.model_copy(
            update={"cold_days": 400})})
        assert apply_lifecycle(client, longer).startswith("written")
        assert {r["Filter"]["Prefix"]: r for r in current_rules(s3, bucket)}["raw/"]["Expiration"] == \
            {"Days": 400}
        assert apply_lifecycle(client, longer) == "unchanged"

        # Originals (point clouds too, in either key layout) and bundles are written cold; raw
        # frames, previews and thumbnails standard. Cold objects read back as written.
        classes = classes_in(s3, bucket)
        assert {classes[names[k]] for k in ("original", "bundle", "cloud", "legacy_cloud")} == {"GLACIER_IR"}
        assert names["cloud"] == f"raw/{ROBOT}/{session}/compressed/lidar/pointcloud/original/{ts_us}.drc"
        assert s3.get_object(Bucket=bucket, Key=names["legacy_cloud"])["Body"].read() == b"DRCO"
        assert {classes[k] for k in (raw_frame, names["preview"], names["thumbnail"])} == {"STANDARD"}
    finally:
        remove_bucket(s3, bucket)


def test_a_storage_class_the_store_refuses_still_stores_the_objects_standard(
    make_settings: Callable[..., Settings], resolver: ConfluentSchemaResolver, s3: Any, tag: str,
) -> None:
    bucket = f"lc2-{tag}"
    s3.create_bucket(Bucket=bucket)
    settings = make_settings({"kind": "s3", "topics": ["derived.frames"]})
    settings = settings.model_copy(update={
        "s3": settings.s3.model_copy(update={"bucket": bucket}),
        "retention": settings.retention.model_copy(update={"cold_storage_class": "NO_SUCH_CLASS"})})
    session = f"lc2-{tag}"
    batch, names = frame_batch(session, int(time.time() * 1_000_000))
    try:
        with running_worker(settings):
            topic = frames_topic(settings)
            value = DerivedCodec(resolver).encode(topic, batch)
            produce_raw(settings, topic, value, f"{ROBOT}/{session}".encode())
            wait_until(lambda: set(names.values()) <= classes_in(s3, bucket).keys(), 60, "the objects")
        classes = classes_in(s3, bucket)
        assert {classes[names[k]] for k in ("original", "bundle", "preview")} == {"STANDARD"}
        assert s3.get_object(Bucket=bucket, Key=names["original"])["Body"].read() == b"O" * 3000
    finally:
        remove_bucket(s3, bucket)
