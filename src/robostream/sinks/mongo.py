"""The MongoDB sink: ``sessions``, ``telemetry``, ``frames_metadata``, ``aggregations``, GridFS.

Document shapes and the reasons behind them are in docs/sinks.md. In short:

* ``telemetry``: **one document per (robot, session, channel group, minute)** with packed binary
  columns, and ``telemetry_lod``, the level-of-detail pyramid (:mod:`robostream.sinks.buckets`,
  written by :class:`~robostream.sinks.bucket_store.BucketStore`): samples already stored are
  skipped, so a redelivered record changes nothing.
* ``frames_metadata``: one document per frame (camera + timestamp); each image kind or
  compacted tier ``$set``s its own fields; ``frame_number`` is the smallest SDK ``seq`` of the
  frame's records (``$min``: the same whatever order, redelivery or replay brings them);
  thumbnails' bytes in GridFS, their chunks dated like the frame so both expire together.
* ``sessions``: upserted from session start/end events; running stats ``$inc``-ed by what a
  write newly created, recounted from the stored documents after a retry, a restart or a replay.
* ``aggregations``: one document per metric window, replaced (a re-emitted window is equal).

Indexes (compound ``(robot_id, session_id, timestamp)``; TTL on every growing collection, see
:func:`ttl_indexes` and docs/retention.md) are created or adjusted at start-up, or on the first
write if MongoDB is down then.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, MongoClient, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

from robostream.config import Settings
from robostream.processors import FrameBatch, FrameTier, TierName, WindowStats
from robostream.schemas import DataType, Envelope
from robostream.sinks import keys
from robostream.sinks.base import PoisonRecordError, RetriableSinkError, SessionEvent, SinkContext, SinkRecord
from robostream.sinks.bucket_store import LOD, BucketStore, Piece, pieces_of
from robostream.sinks.points import Telemetry
from robostream.times import HOUR_US, micros_to_datetime

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
THUMBNAILS_BUCKET = "thumbnails"
#: GridFS's default chunk size (255 KiB): a thumbnail is one chunk.
GRIDFS_CHUNK_BYTES = 255 * 1024
DAY_S = 86_400
_TRANSIENT = (AutoReconnect, ConnectionFailure, ExecutionTimeout, WriteConcernError)
#: Server error codes that mean "not now" (shutdown, failover, time limits), not "never".
RETRIABLE_CODES = frozenset({6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


def is_transient(exc: BaseException) -> bool:
    """A MongoDB error worth retrying (the server is unreachable, shutting down, failing over)."""
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in RETRIABLE_CODES or exc.has_error_label("RetryableWriteError")
    return False


def retention_seconds(settings: Settings) -> int:
    """TTL of the hot collections: ``mongo.hot_retention_days`` in seconds."""
    return settings.mongo.hot_retention_days * DAY_S


def ttl_indexes(settings: Settings) -> dict[str, tuple[str, int]]:
    """Every growing collection: ``{collection: (date field, expireAfterSeconds)}``.

    Hot data expires ``mongo.hot_retention_days`` after its own (robot clock) time, thumbnails
    by their frame's time like ``frames_metadata``; sessions keep their summary for the cold
    period after their last sample (``retention.cold_days``).
    """
    hot = retention_seconds(settings)
    return {
        "telemetry": ("timestamp", hot),
        LOD: ("timestamp", hot),
        "frames_metadata": ("timestamp", hot),
        "aggregations": ("window_start", hot),
        f"{THUMBNAILS_BUCKET}.files": ("timestamp", hot),
        f"{THUMBNAILS_BUCKET}.chunks": ("timestamp", hot),
        "sessions": ("last_activity", settings.retention.cold_days * DAY_S),
    }


def ensure_ttl(db: Database[dict[str, Any]], collection: str, field_name: str, seconds: int) -> str:
    """Make ``collection`` expire documents ``seconds`` after ``field_name``; idempotent.

    Returns what was done: ``unchanged``, ``created``, ``updated`` (collMod of the index on the
    field: another TTL, or none) or ``replaced`` (collMod refused: drop + create).
    """
    coll = db[collection]
    existing = next((ix for ix in coll.list_indexes() if list(ix["key"].items()) in
                     ([(field_name, 1)], [(field_name, -1)])), None)
    if existing is None:
        coll.create_index(field_name, name=f"{field_name}_ttl", expireAfterSeconds=seconds)
        return "created"
    if existing.get("expireAfterSeconds") == seconds:
        return "unchanged"
    try:
        db.command("collMod", collection, index={"name": existing["name"], "expireAfterSeconds": seconds})
        return "updated"
    except OperationFailure as exc:
        log.warning("collMod of %s.%s refused (%s): dropping and creating it", collection,
                    existing["name"], exc)
    coll.drop_index(existing["name"])
    coll.create_index(field_name, name=f"{field_name}_ttl", expireAfterSeconds=seconds)
    return "replaced"


# -- documents -----------------------------------------------------------------------------------


def _blob_location(envelope: Envelope, settings: Settings, kind: str) -> tuple[str, str]:
    """Bucket and key of an image: its claim-check reference, or the S3 sink's raw key."""
    payload = envelope.payload
    content = payload["blob"]["content"]
    if isinstance(content, dict):
        return str(content["bucket"]), str(content["key"])
    key = keys.raw_frame_key(envelope.robot_id, envelope.session_id, payload["camera_id"],
                             envelope.timestamp_us, kind, payload["blob"]["format"])
    return settings.s3.bucket, key


@dataclass
class FrameUpdate:
    """What one record adds to one ``frames_metadata`` document (a frame = camera + time)."""

    doc_id: str
    robot_id: str
    session_id: str
    camera_id: str
    timestamp_us: int
    kind: str
    fields: dict[str, Any]
    metadata: dict[str, Any]
    metadata_wins: bool
    seq: int
    thumbnail: bytes | None = None


def frame_update_from_image(envelope: Envelope, settings: Settings) -> FrameUpdate:
    """A raw ``images`` record: ``s3_urls.<kind>`` (its S3 object) and ``streams.<kind>``."""
    payload = envelope.payload
    kind = str(payload["kind"])
    camera = str(payload["camera_id"])
    bucket, key = _blob_location(envelope, settings, kind)
    blob = payload["blob"]
    content = blob["content"]
    stream = {"format": blob["format"], "width": payload["width"], "height": payload["height"],
              "size_bytes": blob["size_bytes"], "sha256": blob["sha256"], "seq": envelope.seq,
              "key": key}
    doc_id = keys.frame_doc_id(envelope.robot_id, envelope.session_id, camera, envelope.timestamp_us)
    thumbnail = bytes(content) if kind == "thumbnail" and isinstance(content, bytes) else None
    fields: dict[str, Any] = {f"s3_urls.{kind}": keys.s3_uri(bucket, key), f"streams.{kind}": stream}
    if thumbnail is not None:
        fields[f"thumbnail_file_ids.{kind}"] = thumbnail_file_id(doc_id, kind)
    return FrameUpdate(
        doc_id=doc_id, robot_id=envelope.robot_id, session_id=envelope.session_id, camera_id=camera,
        timestamp_us=envelope.timestamp_us, kind=kind, fields=fields,
        metadata={"width": payload["width"], "height": payload["height"], "format": blob["format"],
                  "size_bytes": blob["size_bytes"], "compression": blob["format"]},
        metadata_wins=kind == "rgb", seq=envelope.seq, thumbnail=thumbnail,
    )


def _tier_doc(tier: FrameTier, bucket: str) -> dict[str, Any]:
    return {"tier": tier.tier, "url": keys.s3_uri(bucket, tier.key), "key": tier.key,
            "format": tier.format, "compression": tier.compression, "width": tier.width,
            "height": tier.height, "size_bytes": tier.size_bytes,
            "segment_index": tier.segment_index, "segment_frames": tier.segment_frames}


def frame_updates_from_batch(batch: FrameBatch, settings: Settings) -> list[FrameUpdate]:
    """A processors' ``FrameBatch``: per frame, ``compressed.<kind>`` (tiers, sizes, ratio),
    ``s3_urls.<kind>_<tier>``, ``s3_urls.thumbnail`` (from RGB) and the GridFS thumbnail."""
    kind = batch.kind.value
    updates = []
    for frame in batch.frames:
        doc_id = keys.frame_doc_id(batch.robot_id, batch.session_id, batch.camera_id, frame.timestamp)
        for tier in frame.tiers:
            keys.validate_object_key(tier.key, batch.robot_id, batch.session_id)
        fields: dict[str, Any] = {
            f"compressed.{kind}": {
                "frame_id": frame.frame_id, "seq": frame.seq, "source_format": frame.source_format,
                "source_size_bytes": frame.source_size_bytes,
                "compressed_size_bytes": frame.compressed_size_bytes,
                "compression_ratio": round(frame.compression_ratio, 4),
                "tiers": [_tier_doc(t, settings.s3.bucket) for t in frame.tiers],
            },
        }
        for tier in frame.tiers:
            fields[f"s3_urls.{kind}_{tier.tier}"] = keys.s3_uri(settings.s3.bucket, tier.key)
            if tier.tier == TierName.THUMBNAIL and kind == "rgb":
                fields["s3_urls.thumbnail"] = keys.s3_uri(settings.s3.bucket, tier.key)
        if frame.thumbnail is not None:
            fields[f"thumbnail_file_ids.{kind}"] = thumbnail_file_id(doc_id, kind)
        original = frame.tier(TierName.ORIGINAL)
        updates.append(FrameUpdate(
            doc_id=doc_id, robot_id=batch.robot_id, session_id=batch.session_id,
            camera_id=batch.camera_id, timestamp_us=frame.timestamp, kind=kind, fields=fields,
            metadata={"width": frame.width, "height": frame.height, "format": frame.source_format,
                      "size_bytes": frame.source_size_bytes,
                      "compression": original.compression if original else None},
            metadata_wins=False, seq=frame.seq, thumbnail=frame.thumbnail,
        ))
    return updates


def frame_operation(update: FrameUpdate, *, cached: bool, cache_ttl_s: int, now: datetime) -> UpdateOne:
    """Upsert of a ``frames_metadata`` document (idempotent: ``$set`` of what this record adds).

    ``metadata`` (width, height, format, size_bytes, compression) comes from the raw RGB image
    when there is one, else from whichever record created the document. ``frame_number`` is the
    smallest SDK ``seq`` among the frame's records: it increases per camera (the SDK numbers a
    session's envelopes in send order) and is a function of the records alone, so arrival order,
    redelivery, a second task or a replay of the records cannot change it.
    """
    on_insert: dict[str, Any] = {
        "robot_id": update.robot_id, "session_id": update.session_id,
        "camera_id": update.camera_id, "frame_id": keys.frame_id(update.camera_id, update.timestamp_us),
        "timestamp": micros_to_datetime(update.timestamp_us), "timestamp_us": update.timestamp_us,
        "bucket_hour": micros_to_datetime(update.timestamp_us - update.timestamp_us % HOUR_US),
        "ingested_at": now,
    }
    to_set: dict[str, Any] = {
        **update.fields,
        "cached": cached,
        "cache_expiry": now + timedelta(seconds=cache_ttl_s) if cached else None,
    }
    (to_set if update.metadata_wins else on_insert)["metadata"] = update.metadata
    return UpdateOne({"_id": update.doc_id},
                     {"$set": to_set, "$setOnInsert": on_insert, "$min": {"frame_number": update.seq}},
                     upsert=True)


def thumbnail_file_id(frame_doc_id: str, kind: str) -> str:
    """GridFS ``_id`` of a frame's thumbnail (per image kind)."""
    return f"{frame_doc_id}/{kind}/thumbnail"


def date_old_thumbnails(db: Database[dict[str, Any]]) -> int:
    """Give thumbnails stored without a ``timestamp`` (by robostream before their chunks were
    dated) their frame's time from ``metadata.timestamp_us``, chunks first; returns how many."""
    files = db[f"{THUMBNAILS_BUCKET}.files"]
    dated = 0
    for doc in files.find({"timestamp": {"$exists": False}}, {"metadata.timestamp_us": 1}):
        ts_us = (doc.get("metadata") or {}).get("timestamp_us")
        if not isinstance(ts_us, int):
            continue
        moment = {"$set": {"timestamp": micros_to_datetime(ts_us)}}
        db[f"{THUMBNAILS_BUCKET}.chunks"].update_many({"files_id": doc["_id"]}, moment)
        files.update_one({"_id": doc["_id"]}, moment)
        dated += 1
    return dated


def thumbnail_operations(
    update: FrameUpdate, source: str, now: datetime,
) -> tuple[UpdateOne, list[UpdateOne]]:
    """The GridFS ``files`` document and ``chunks`` of a thumbnail, as insert-once upserts.

    Written as GridFS lays them out (any GridFS reader opens them), plus a ``timestamp`` -- the
    frame's time, the date ``frames_metadata`` expires by -- on the file *and* on each chunk, so
    the TTL monitor deletes the bytes with their metadata (GridFS chunks have no date of their
    own). Chunk ids are deterministic: a redelivery finds every document already there.
    """
    file_id = thumbnail_file_id(update.doc_id, update.kind)
    data = update.thumbnail or b""
    moment = micros_to_datetime(update.timestamp_us)
    chunks = [UpdateOne({"_id": f"{file_id}/{n}"}, {"$setOnInsert": {
        "files_id": file_id, "n": n, "data": data[offset:offset + GRIDFS_CHUNK_BYTES],
        "timestamp": moment}}, upsert=True)
        for n, offset in enumerate(range(0, max(len(data), 1), GRIDFS_CHUNK_BYTES))]
    file_doc = {
        "length": len(data), "chunkSize": GRIDFS_CHUNK_BYTES, "uploadDate": now, "timestamp": moment,
        "filename": f"{update.camera_id}-{update.kind}-{update.timestamp_us}.jpg",
        "metadata": {"robot_id": update.robot_id, "session_id": update.session_id,
                     "camera_id": update.camera_id, "kind": update.kind,
                     "timestamp_us": update.timestamp_us, "content_type": "image/jpeg",
                     "source": source},
    }
    return UpdateOne({"_id": file_id}, {"$setOnInsert": file_doc}, upsert=True), chunks


def session_operation(event: SessionEvent, now: datetime) -> UpdateOne:
    """Upsert of a ``sessions`` document from a start or end event."""
    datum = event.datum
    doc_id = keys.session_doc_id(event.robot_id, event.session_id)
    moment = micros_to_datetime(int(datum["timestamp"]))
    base = {"robot_id": event.robot_id, "session_id": event.session_id}
    # every session document carries last_activity (its newest sample or event), the date its
    # summary expires by; stats.last_seen stays the newest sample (the API ends a session's span there)
    if datum["kind"] == "start":
        config = datum.get("config") or {}
        to_set: dict[str, Any] = {
            "status": "running", "started_at": moment, "updated_at": now,
            "config": {
                "sensors": config.get("sensors", []),
                "sampling_rates_hz": config.get("rates_hz", {}),
                "cameras": config.get("cameras", []),
                "data_types": config.get("data_types", []),
                "software_version": config.get("software_version"),
                "extra": config.get("extra", {}),
            },
        }
    else:
        to_set = {"status": "ended", "ended_at": moment, "updated_at": now,
                  "end": datum.get("stats")}
    return UpdateOne({"_id": doc_id}, {"$set": to_set, "$setOnInsert": base,
                                       "$max": {"last_activity": moment}}, upsert=True)


def aggregation_operations(stats: WindowStats) -> list[ReplaceOne]:
    """Replace-upserts of one window, one ``aggregations`` document per metric."""
    operations = []
    for agg in stats.aggregates():
        doc_id = keys.aggregation_doc_id(agg.robot_id, agg.session_id, agg.metric, agg.resolution,
                                         agg.window_start)
        doc = {"_id": doc_id, "robot_id": agg.robot_id, "session_id": agg.session_id,
               "metric": agg.metric, "resolution": agg.resolution,
               "window_start": micros_to_datetime(agg.window_start),
               "window_end": micros_to_datetime(agg.window_end),
               "window_start_us": agg.window_start, "window_end_us": agg.window_end,
               "count": agg.count, "min": agg.min, "max": agg.max, "mean": agg.mean,
               "stddev": agg.stddev, "last": agg.last,
               "last_timestamp": micros_to_datetime(agg.last_timestamp), "unit": agg.unit,
               "closed_by": stats.closed_by}
        operations.append(ReplaceOne({"_id": doc_id}, doc, upsert=True))
    return operations


@dataclass
class SessionTally:
    """Running stats to add to a session (counted only for newly created documents)."""

    points: int = 0
    frames: int = 0
    data_bytes: int = 0
    last_seen_us: int = 0

    def operation(self, robot_id: str, session_id: str) -> UpdateOne:
        return UpdateOne(
            {"_id": keys.session_doc_id(robot_id, session_id)},
            {"$inc": {"stats.total_telemetry_points": self.points,
                      "stats.total_frames": self.frames,
                      "stats.data_size_bytes": self.data_bytes},
             "$max": {"stats.last_seen": micros_to_datetime(self.last_seen_us),
                      "last_activity": micros_to_datetime(self.last_seen_us)},
             "$setOnInsert": {"robot_id": robot_id, "session_id": session_id}},
            upsert=True,
        )


# -- the batch plan ------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one batch writes, per collection, with the record behind every operation."""

    telemetry: list[tuple[Piece, SinkRecord]] = field(default_factory=list)
    frames: list[tuple[FrameUpdate, SinkRecord]] = field(default_factory=list)
    sessions: list[tuple[UpdateOne, SinkRecord]] = field(default_factory=list)
    aggregations: list[tuple[ReplaceOne, SinkRecord]] = field(default_factory=list)
    skipped: int = 0


class MongoSink:
    """Lands records in MongoDB (see the module docstring). One instance per task."""

    def __init__(self, settings: Settings, *, client: MongoClient[dict[str, Any]] | None = None) -> None:
        self.settings = settings
        self._client = client
        self._own_client = client is None
        self._context: SinkContext | None = None
        self._ready = False
        self._recount_next = True  # the first write of a task may be a redelivery
        self._lands_frames_in_redis = False
        self._buckets: BucketStore | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self, context: SinkContext) -> None:
        """Create the client and the indexes (retried on the first write if MongoDB is down)."""
        self._context = context
        if self._client is None:
            self._client = MongoClient(
                # connectTimeoutMS is also the heartbeat timeout: a busy server must not look down.
                self.settings.mongo.uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=10_000,
                socketTimeoutMS=60_000, appname=f"robostream-connect-{context.connector}",
                tz_aware=True,
            )
        try:
            self.ensure_indexes()  # at start-up; if MongoDB is down, on the first write instead
            self._ready = True
        except PyMongoError as exc:
            if not is_transient(exc):
                raise
            log.warning("MongoDB not reachable at start-up (%s); indexes on the first write", exc)
        self._lands_frames_in_redis = any(
            c.kind == "redis" and c.enabled and {"images", "derived.frames"} & set(c.topics)
            for c in context.settings.connectors
        )

    @property
    def db(self) -> Database[dict[str, Any]]:
        if self._client is None:
            raise RuntimeError("MongoSink is not open")
        return self._client[self.settings.mongo.database]

    def ping(self) -> None:
        """Raise :class:`RetriableSinkError` unless the server answers."""
        try:
            self.db.command("ping")
        except PyMongoError as exc:
            raise RetriableSinkError(f"MongoDB unreachable: {exc}") from exc

    def flush(self) -> None:
        """Writes are acknowledged synchronously by ``write``: nothing is pending."""

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
        self._client = None

    # -- indexes -------------------------------------------------------------------------------

    def ensure_indexes(self) -> None:
        """Compound ``(robot_id, session_id[, group, level], timestamp)`` indexes, GridFS's own
        indexes, and the TTL of every growing collection (:func:`ttl_indexes`)."""
        db = self.db
        for name in ("telemetry", "frames_metadata", LOD):
            db[name].create_index([("robot_id", ASCENDING), ("session_id", ASCENDING),
                                   ("timestamp", ASCENDING)], name="robot_session_time")
        # history reads: one channel group (fields=pose), or one pyramid level, by time range; an
        # index on them keeps the server from decoding the other groups' documents to filter them
        db["telemetry"].create_index([("robot_id", ASCENDING), ("session_id", ASCENDING),
                                      ("group", ASCENDING), ("timestamp", ASCENDING)],
                                     name="robot_session_group_time")
        for keys_ in ([("level", ASCENDING)], [("group", ASCENDING), ("level", ASCENDING)]):
            db[LOD].create_index([("robot_id", ASCENDING), ("session_id", ASCENDING), *keys_,
                                  ("timestamp", ASCENDING)],
                                 name="robot_session_" + "_".join(k for k, _ in keys_) + "_time")
        db["frames_metadata"].create_index(
            [("robot_id", ASCENDING), ("session_id", ASCENDING), ("camera_id", ASCENDING),
             ("timestamp", ASCENDING)], name="robot_session_camera_time")
        db["aggregations"].create_index(
            [("robot_id", ASCENDING), ("session_id", ASCENDING), ("metric", ASCENDING),
             ("resolution", ASCENDING), ("window_start", ASCENDING)], name="robot_session_metric_window")
        db["sessions"].create_index([("robot_id", ASCENDING), ("started_at", ASCENDING)],
                                    name="robot_started")
        # what GridFSBucket creates on its first upload (thumbnails are written without it)
        db[f"{THUMBNAILS_BUCKET}.files"].create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])
        db[f"{THUMBNAILS_BUCKET}.chunks"].create_index([("files_id", ASCENDING), ("n", ASCENDING)],
                                                       unique=True)
        for collection, (field_name, seconds) in ttl_indexes(self.settings).items():
            done = ensure_ttl(db, collection, field_name, seconds)
            if done != "unchanged":
                log.info("TTL of %s by %s: %d s (%s)", collection, field_name, seconds, done)
        if dated := date_old_thumbnails(db):
            log.info("%d thumbnails stored without a date now expire with their frames", dated)

    # -- write ---------------------------------------------------------------------------------

    def write(self, batch: Sequence[SinkRecord]) -> None:
        """Land ``batch``: telemetry, frames, sessions, aggregations, then session stats."""
        try:
            if not self._ready:
                self.ensure_indexes()
                self._ready = True
            plan = self._plan(batch)
            tallies: dict[tuple[str, str], SessionTally] = defaultdict(SessionTally)
            self._write_sessions(plan)
            replayed = self._write_telemetry(plan, tallies)
            self._write_frames(plan, tallies)
            self._write_aggregations(plan)
            if self._recount_next or replayed:
                self._recount(tallies)
            else:
                self._write_tallies(tallies)
            self._recount_next = False
        except PyMongoError as exc:
            self._recount_next = True
            if is_transient(exc):
                raise RetriableSinkError(f"MongoDB unavailable: {type(exc).__name__}: {exc}") from exc
            raise

    def _report(self, record: SinkRecord, exc: BaseException) -> None:
        if self._context is None:
            raise exc
        self._context.report(record, exc)

    def _plan(self, batch: Sequence[SinkRecord]) -> Plan:
        plan = Plan()
        for record in batch:
            try:
                self._plan_one(plan, record)
            except (ValueError, KeyError, TypeError) as exc:
                self._report(record, PoisonRecordError(f"cannot map record to MongoDB: {exc}"))
        return plan

    def _plan_one(self, plan: Plan, record: SinkRecord) -> None:
        item = record.item
        if isinstance(item, Envelope):
            if item.data_type is DataType.IMAGES:
                plan.frames.append((frame_update_from_image(item, self.settings), record))
            else:
                plan.skipped += 1  # other data types: landed by the S3 sink
        elif isinstance(item, Telemetry):
            plan.telemetry.extend((piece, record) for piece in pieces_of(item.buckets))
        elif isinstance(item, FrameBatch):
            plan.frames.extend((u, record) for u in frame_updates_from_batch(item, self.settings))
        elif isinstance(item, WindowStats):
            plan.aggregations.extend((op, record) for op in aggregation_operations(item))
        elif isinstance(item, SessionEvent):
            plan.sessions.append((session_operation(item, datetime.now(UTC)), record))
        else:
            raise TypeError(f"MongoDB sink cannot land {type(item).__name__}")

    def _bulk(self, collection: str, operations: list[Any], records: list[SinkRecord]) -> dict[str, Any]:
        """Unordered bulk write; duplicate keys are fine (a replay), other per-document errors
        are reported as poison records. Returns the bulk result's details."""
        if not operations:
            return {"nInserted": 0, "upserted": [], "writeErrors": []}
        try:
            result = self.db[collection].bulk_write(operations, ordered=False)
            return {"nInserted": result.inserted_count,
                    "upserted": [{"index": i} for i in (result.upserted_ids or {})], "writeErrors": []}
        except BulkWriteError as exc:
            details = dict(exc.details)
            for error in details.get("writeErrors", []):
                if error.get("code") != DUPLICATE_KEY:
                    self._report(records[error["index"]], PoisonRecordError(
                        f"MongoDB rejected the document ({error.get('code')}): {error.get('errmsg')}"))
            if details.get("writeConcernErrors"):
                raise RetriableSinkError(f"write concern: {details['writeConcernErrors'][:1]}") from exc
            return details

    def _write_telemetry(self, plan: Plan, tallies: dict[tuple[str, str], SessionTally]) -> bool:
        """Merge the samples into their minute buckets (and the pyramid); never a replay to
        recount: the bucket store counts exactly the samples it newly stored."""
        if not plan.telemetry:
            return False
        if self._buckets is None:
            self._buckets = BucketStore(self.db)
        try:
            added = self._buckets.write(piece for piece, _ in plan.telemetry)
        except PyMongoError:
            self._buckets.forget()
            raise
        sizes: dict[tuple[str, str], int] = defaultdict(int)
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for piece, _record in plan.telemetry:
            key = (piece.robot_id, piece.session_id)
            tally = tallies[key]
            tally.last_seen_us = max(tally.last_seen_us, int(piece.times.max()))
            sizes[key] += piece.times.size * (len(piece.names) * 8 + 20)  # as the documents count
            counts[key] += piece.times.size
        for key, count in added.items():
            tallies[key].points += count
            tallies[key].data_bytes += sizes[key] * count // max(1, counts[key])
        return False

    def _write_frames(self, plan: Plan, tallies: dict[tuple[str, str], SessionTally]) -> None:
        if not plan.frames:
            return
        now = datetime.now(UTC)
        self._store_thumbnails(plan, now)
        operations = [frame_operation(u, cached=self._lands_frames_in_redis,
                                      cache_ttl_s=self.settings.redis.frame_ttl_s, now=now)
                      for u, _ in plan.frames]
        details = self._bulk("frames_metadata", operations, [r for _, r in plan.frames])
        created = {u["index"] for u in details.get("upserted", [])}
        for index, (update, _record) in enumerate(plan.frames):
            tally = tallies[(update.robot_id, update.session_id)]
            if index in created:
                tally.frames += 1
                tally.data_bytes += int(update.metadata.get("size_bytes") or 0)
            tally.last_seen_us = max(tally.last_seen_us, update.timestamp_us)

    def _store_thumbnails(self, plan: Plan, now: datetime) -> None:
        """The batch's thumbnails in GridFS: all chunks first, then the files documents (a file
        is never visible without its bytes), two bulk writes per batch."""
        files: list[UpdateOne] = []
        chunks: list[UpdateOne] = []
        file_records: list[SinkRecord] = []
        chunk_records: list[SinkRecord] = []
        for update, record in plan.frames:
            if update.thumbnail is None:
                continue
            file_op, chunk_ops = thumbnail_operations(
                update, f"{record.topic}/{record.partition}/{record.offset}", now)
            files.append(file_op)
            file_records.append(record)
            chunks.extend(chunk_ops)
            chunk_records.extend([record] * len(chunk_ops))
        self._bulk(f"{THUMBNAILS_BUCKET}.chunks", chunks, chunk_records)
        self._bulk(f"{THUMBNAILS_BUCKET}.files", files, file_records)

    def _write_sessions(self, plan: Plan) -> None:
        self._bulk("sessions", [op for op, _ in plan.sessions], [r for _, r in plan.sessions])

    def _write_aggregations(self, plan: Plan) -> None:
        self._bulk("aggregations", [op for op, _ in plan.aggregations],
                   [r for _, r in plan.aggregations])

    def _recount(self, tallies: dict[tuple[str, str], SessionTally]) -> None:
        """Set the sessions' stats from what is stored (exact after a replay or a retry, when
        ``$inc`` of new documents alone could miss what an interrupted write stored)."""
        for (robot, session), tally in tallies.items():
            match = {"$match": {"robot_id": robot, "session_id": session}}
            groups = list(self.db["telemetry"].aggregate([match, {"$group": {
                "_id": "$group", "n": {"$sum": "$n"}, "bytes": {"$sum": "$size_bytes"}}}]))
            # a sample has a document per channel group of its record: count the fullest group
            points = [{"n": max(int(g["n"]) for g in groups),
                       "bytes": sum(int(g["bytes"]) for g in groups)}] if groups else []
            frames = list(self.db["frames_metadata"].aggregate([match, {"$group": {
                "_id": None, "n": {"$sum": 1}, "bytes": {"$sum": "$metadata.size_bytes"}}}]))
            p = points[0] if points else {"n": 0, "bytes": 0}
            f = frames[0] if frames else {"n": 0, "bytes": 0}
            self.db["sessions"].update_one(
                {"_id": keys.session_doc_id(robot, session)},
                {"$set": {"stats.total_telemetry_points": p["n"], "stats.total_frames": f["n"],
                          "stats.data_size_bytes": p["bytes"] + f["bytes"]},
                 "$max": {"stats.last_seen": micros_to_datetime(tally.last_seen_us),
                          "last_activity": micros_to_datetime(tally.last_seen_us)},
                 "$setOnInsert": {"robot_id": robot, "session_id": session}},
                upsert=True,
            )

    def _write_tallies(self, tallies: dict[tuple[str, str], SessionTally]) -> None:
        operations = [t.operation(robot, session) for (robot, session), t in tallies.items()
                      if t.points or t.frames or t.data_bytes]
        if operations:
            self.db["sessions"].bulk_write(operations, ordered=False)
