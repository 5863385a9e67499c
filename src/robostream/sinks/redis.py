"""The Redis sink: the live cache and pub/sub the ML-Dash API reads (one pipeline per batch).

* ``telemetry:{robot}:{session}:latest`` -- a sorted set of the last ``redis.latest_window``
  points, scored by the point's time (µs), member = the point as canonical JSON
  ``{"seq", "i", "ts_us", "values": {metric: value}}`` (``seq`` and index make a redelivered
  point the same member: ``ZADD`` is idempotent). Read it with ``ZRANGE key 0 -1`` (oldest
  first). Expires a day after the last write.
* ``frames:{robot}:{session}:{camera}-{ts}`` -- a hash: ``url:<kind>`` (presigned GET URL of the
  raw image, ``s3.presign_expiry_s``), ``url:<kind>_<tier>`` and ``url:thumbnail`` (compacted
  tiers), ``meta:<kind>`` (JSON), ids and timestamp; expires after ``redis.frame_ttl_s``.
* ``stats:{robot}:{session}:{metric}:{resolution}`` -- a sorted set of the last
  ``redis.latest_window`` windows scored by window start (µs), member = the window as JSON; a
  re-emitted window replaces its member.
* ``logs:{robot}:{session}:latest`` -- a sorted set of the last ``redis.latest_window`` log
  records scored by their time (µs), member = the record's live message (canonical JSON, with its
  ``seq``: a redelivery is the same member). Expires a day after the last write.
* ``sessions:live`` -- a sorted set of the sessions whose telemetry or images this sink wrote:
  member ``{robot}:{session}``, score the newest sample seen (µs; ``ZADD GT``), the 10,000 most
  recent kept. The API lists a running session from it within milliseconds of its first sample,
  before the MongoDB sink landed the session's document.
* Pub/sub: every new item goes to ``live:{robot}:{session}`` and
  ``live:{robot}:{session}:{data_type}`` (``time_series``, ``images``, ``stats``, ``log``). A
  time_series record is one message carrying all its points (one per minute bucket it spans); a
  log record one message, the member of its ring (``{"type": "log", ...}``). Telemetry is
  written in two round trips per batch: the first asks which buckets the ring already holds, the
  second publishes the new ones and stores every one (plain ``ZADD``, trimmed after each). So a
  replay does not re-publish (except points older than the ring, which are re-added, trimmed and
  published again), and a crash between the two phases publishes again rather than never.
  Frames, stats and logs run in Lua scripts that publish only when something new was stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis as redis_lib
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from robostream.config import Settings
from robostream.processors import FrameBatch, TierName, WindowStats
from robostream.schemas import DataType, Envelope
from robostream.sinks import keys
from robostream.sinks.base import PoisonRecordError, RetriableSinkError, SinkContext, SinkRecord
from robostream.sinks.points import Telemetry, point_members, single_record
from robostream.sinks.s3 import presign_client
from robostream.times import SECOND_US
from robostream.topics import RESOLUTION_US

log = logging.getLogger(__name__)

LATEST_TTL_S = 24 * 3600
PIPELINE_CHUNK = 500
_RESOLUTION_S = {resolution.value: us // SECOND_US for resolution, us in RESOLUTION_US.items()}
_RETRIABLE_REPLIES = ("LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")

#: KEYS[1] frame hash; ARGV: ttl, channel, typed channel, message, then field/value pairs.
#: Publishes when the frame gains a kind it did not have.
FRAME_LUA = """
local new = 0
for i = 5, #ARGV, 2 do
  new = new + redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if new > 0 then
  redis.call('PUBLISH', ARGV[2], ARGV[4])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return new
"""

#: KEYS[1] stats zset; ARGV: window start, member, keep, ttl, channel, typed channel.
STATS_LUA = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if #old == 1 and old[1] == ARGV[2] then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[2])
redis.call('PUBLISH', ARGV[6], ARGV[2])
return 1
"""


#: KEYS[1] log ring; ARGV: ts, member (the message), keep, ttl, channel, typed channel.
#: Publishes a record the ring did not hold and still holds after the trim (not one older than it).
LOG_LUA = """
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if added == 0 then return 0 end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('PUBLISH', ARGV[5], ARGV[2])
redis.call('PUBLISH', ARGV[6], ARGV[2])
return 1
"""


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON (sorted keys): equal content -> equal bytes -> same ZSET member."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def telemetry_message(robot_id: str, session_id: str, points: list[dict[str, Any]]) -> bytes:
    """The pub/sub message of new telemetry: the points of one record (or minute bucket)."""
    return canonical_json({"type": "time_series", "robot_id": robot_id, "session_id": session_id,
                           "points": points})


def telemetry_message_of(robot_id: str, session_id: str, members: list[bytes]) -> bytes:
    """:func:`telemetry_message` from the points' canonical JSON (the ring's members), without
    serialising every point a second time: the same bytes (keys in sorted order)."""
    return b"".join((b'{"points":[', b",".join(members), b'],"robot_id":', orjson.dumps(robot_id),
                     b',"session_id":', orjson.dumps(session_id), b',"type":"time_series"}'))


def log_message(envelope: Envelope) -> bytes:
    """The pub/sub message (and ring member) of a ``log`` record."""
    payload = envelope.payload
    return canonical_json({"type": "log", "robot_id": envelope.robot_id, "session_id": envelope.session_id,
                           "seq": envelope.seq, "timestamp_us": envelope.timestamp_us,
                           "level": str(payload["level"]), "logger": str(payload.get("logger") or ""),
                           "message": str(payload["message"]),
                           "attributes": dict(payload.get("attributes") or {})})


def stats_ttl_s(resolution: str, window: int) -> int:
    """How long a stats key outlives its last write: its whole window, plus an hour."""
    return window * _RESOLUTION_S.get(resolution, 60) + 3600


def is_retriable(exc: BaseException) -> bool:
    """Connection trouble, or a server reply that says "try again later"."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return True
    return isinstance(exc, ResponseError) and str(exc).upper().startswith(_RETRIABLE_REPLIES)


@dataclass(slots=True)
class _Bucket:
    """The points of one record within one minute: one ``ZADD`` and one live message."""

    record: SinkRecord
    message: bytes
    scored: list[tuple[int, bytes]]  # (ts_us, member), stream order
    one_record: bool  # every point from the same record (raw topic): all stored, or none

    @property
    def zadd_args(self) -> list[Any]:
        args: list[Any] = []
        for ts_us, member in self.scored:
            args += (ts_us, member)
        return args


@dataclass(slots=True)
class _Ring:
    """The telemetry of one session within one pipeline (``telemetry:...:latest``)."""

    key: str
    robot_id: str
    session_id: str
    buckets: list[_Bucket] = field(default_factory=list)

    @property
    def last_us(self) -> int | None:
        """Time of the session's newest point in this pipeline (``None`` without points)."""
        return max((ts for b in self.buckets for ts, _ in b.scored), default=None)


class RedisSink:
    """Lands the live view in Redis (see the module docstring). One instance per task."""

    def __init__(self, settings: Settings, *, client: redis_lib.Redis | None = None) -> None:
        self.settings = settings
        self._client = client
        self._context: SinkContext | None = None
        self._s3: Any = None
        self._frame: Script | None = None
        self._stats: Script | None = None
        self._log: Script | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self, context: SinkContext) -> None:
        """Create the client and register the scripts (loaded on first use)."""
        self._context = context
        if self._client is None:
            self._client = redis_lib.Redis.from_url(
                self.settings.redis.url, socket_timeout=5, socket_connect_timeout=2,
                health_check_interval=10, client_name=f"robostream-connect-{context.connector}",
            )
        self._frame = self._client.register_script(FRAME_LUA)
        self._stats = self._client.register_script(STATS_LUA)
        self._log = self._client.register_script(LOG_LUA)
        self._s3 = presign_client(self.settings)  # presigning only: no network calls

    @property
    def client(self) -> redis_lib.Redis:
        if self._client is None:
            raise RuntimeError("RedisSink is not open")
        return self._client

    def ping(self) -> None:
        """Raise :class:`RetriableSinkError` unless Redis answers."""
        try:
            self.client.ping()
        except RedisError as exc:
            raise RetriableSinkError(f"Redis unreachable: {exc}") from exc

    def flush(self) -> None:
        """``write`` executes its pipeline: nothing is pending."""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    # -- commands ------------------------------------------------------------------------------

    @staticmethod
    def _eval(pipe: Any, script: Script | None, keys_: list[str], args: list[Any]) -> None:
        """Queue ``EVALSHA``. (A redis-py ``Script`` called on a pipeline first asks Redis whether
        the script exists, one more round trip per write; :meth:`_write_chunk` loads the scripts
        only when Redis answers ``NOSCRIPT``: after a restart or ``SCRIPT FLUSH``.)"""
        assert script is not None
        pipe.evalsha(script.sha, len(keys_), *keys_, *args)

    def _load_scripts(self) -> None:
        for script in (self._frame, self._stats, self._log):
            assert script is not None
            self.client.script_load(script.script)

    def _collect_telemetry(self, rings: dict[str, _Ring], record: SinkRecord) -> None:
        """Add a telemetry record's minute buckets (points and live message) to its session's
        :class:`_Ring` (nothing is added if the record cannot be mapped)."""
        telemetry: Telemetry = record.item
        buckets = []
        for bucket in telemetry.buckets:
            if not len(bucket):
                continue
            scored = point_members(bucket)
            message = telemetry_message_of(telemetry.robot_id, telemetry.session_id, [m for _, m in scored])
            buckets.append(_Bucket(record, message, scored, one_record=single_record(bucket)))
        key = keys.latest_key(telemetry.robot_id, telemetry.session_id)
        ring = rings.get(key)
        if ring is None:
            ring = rings[key] = _Ring(key, telemetry.robot_id, telemetry.session_id)
        ring.buckets += buckets

    def _stored_buckets(self, rings: dict[str, _Ring]) -> set[int]:
        """The first phase of a telemetry write: ``id()`` of the buckets whose points the ring
        already holds (a redelivery), to be stored again but not published again.

        One round trip for the whole pipeline, one ``ZMSCORE`` per session. A record's bucket is
        stored by one ``ZADD``, so its first point answers for all of them; a bucket merged from
        several records (the derived topic) is checked point by point.
        """
        pipe: Any = self.client.pipeline(transaction=False)  # redis-py's execute_command is untyped
        asked: list[list[tuple[_Bucket, int, int]]] = []  # per ring: bucket, its answers' slice
        for ring in rings.values():
            members: list[bytes] = []
            spans = []
            for b in ring.buckets:
                mine = [b.scored[0][1]] if b.one_record else [m for _, m in b.scored]
                spans.append((b, len(members), len(members) + len(mine)))
                members += mine
            pipe.execute_command("ZMSCORE", ring.key, *members)  # one command per session
            asked.append(spans)
        results = self._execute(pipe)
        stored: set[int] = set()
        for spans, result in zip(asked, results, strict=True):
            if isinstance(result, Exception):
                if is_retriable(result):
                    raise RetriableSinkError(f"Redis unavailable: {result}") from result
                continue  # e.g. the key is not a sorted set: "not stored", the write reports it
            stored.update(id(b) for b, lo, hi in spans if None not in result[lo:hi])
        return stored

    def _queue_ring(self, pipe: Any, ring: _Ring, stored: set[int]) -> list[list[SinkRecord]]:
        """Queue a session's telemetry: per bucket ``PUBLISH`` (when new: first, so a crash
        between the two publishes again rather than never), ``ZADD`` and trim; then ``EXPIRE``
        and ``sessions:live`` once. Returns the records behind each queued command."""
        channels = keys.live_channels(ring.robot_id, ring.session_id, DataType.TIME_SERIES)
        window = self.settings.redis.latest_window
        behind: list[list[SinkRecord]] = []
        published: set[bytes] = set()  # first members published by this pipeline
        for b in ring.buckets:
            first = b.scored[0][1]
            if id(b) not in stored and first not in published:
                published.add(first)
                for channel in channels:
                    pipe.publish(channel, b.message)
                behind += ([b.record], [b.record])
            pipe.execute_command("ZADD", ring.key, *b.zadd_args)
            pipe.zremrangebyrank(ring.key, 0, -(window + 1))  # each time: a big ring costs Redis more
            behind += ([b.record], [b.record])
        records = list({id(b.record): b.record for b in ring.buckets}.values())
        pipe.expire(ring.key, LATEST_TTL_S)
        seen = self._queue_session_seen(pipe, ring.robot_id, ring.session_id, ring.last_us)
        return behind + [records] * (1 + seen)

    @staticmethod
    def _queue_session_seen(pipe: Any, robot_id: str, session_id: str, last_us: int | None) -> int:
        """Register the session in ``sessions:live`` (newest sample wins); returns the commands."""
        if last_us is None:
            return 0
        pipe.zadd(keys.LIVE_SESSIONS_KEY, {keys.live_session_member(robot_id, session_id): last_us}, gt=True)
        pipe.zremrangebyrank(keys.LIVE_SESSIONS_KEY, 0, -(keys.LIVE_SESSIONS_KEEP + 1))
        return 2

    def _presign(self, bucket: str, key: str) -> str:
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key},
            ExpiresIn=self.settings.s3.presign_expiry_s)
        return url

    def _queue_frame(self, pipe: Any, robot_id: str, session_id: str, camera_id: str,
                     timestamp_us: int, kind: str, urls: dict[str, str], meta: dict[str, Any]) -> None:
        """HSET ``url:<name>`` and ``meta:<kind>`` on the frame's hash, EXPIRE, publish if new."""
        frame = keys.frame_id(camera_id, timestamp_us)
        message = canonical_json({"type": "frame", "robot_id": robot_id, "session_id": session_id,
                                  "camera_id": camera_id, "frame_id": frame,
                                  "timestamp_us": timestamp_us, "kind": kind, "urls": urls, **meta})
        fields: list[Any] = ["robot_id", robot_id, "session_id", session_id, "camera_id", camera_id,
                             "frame_id", frame, "timestamp_us", timestamp_us,
                             f"meta:{kind}", canonical_json(meta)]
        for name, url in urls.items():
            fields += [f"url:{name}", url]
        self._eval(pipe, self._frame, [keys.frame_key(robot_id, session_id, camera_id, timestamp_us)],
                   [self.settings.redis.frame_ttl_s,
                    *keys.live_channels(robot_id, session_id, DataType.IMAGES), message, *fields])

    def _queue_image(self, pipe: Any, envelope: Envelope) -> int:
        payload = envelope.payload
        blob = payload["blob"]
        content = blob["content"]
        kind = str(payload["kind"])
        if isinstance(content, dict):
            bucket, key = str(content["bucket"]), str(content["key"])
        else:
            bucket = self.settings.s3.bucket
            key = keys.raw_frame_key(envelope.robot_id, envelope.session_id, payload["camera_id"],
                                     envelope.timestamp_us, kind, blob["format"])
        meta = {"format": blob["format"], "width": payload["width"], "height": payload["height"],
                "size_bytes": blob["size_bytes"], "sha256": blob["sha256"], "seq": envelope.seq,
                "key": key}
        self._queue_frame(pipe, envelope.robot_id, envelope.session_id, payload["camera_id"],
                          envelope.timestamp_us, kind, {kind: self._presign(bucket, key)}, meta)
        return 1

    def _queue_frame_batch(self, pipe: Any, batch: FrameBatch) -> int:
        kind = batch.kind.value
        bucket = self.settings.s3.bucket
        for frame in batch.frames:
            urls = {}
            for tier in frame.tiers:
                keys.validate_object_key(tier.key, batch.robot_id, batch.session_id)
                urls[f"{kind}_{tier.tier}"] = self._presign(bucket, tier.key)
                if tier.tier == TierName.THUMBNAIL and kind == "rgb":
                    urls["thumbnail"] = urls[f"{kind}_{tier.tier}"]
            meta = {"frame_id": frame.frame_id, "seq": frame.seq, "width": frame.width,
                    "height": frame.height, "source_format": frame.source_format,
                    "source_size_bytes": frame.source_size_bytes,
                    "compressed_size_bytes": frame.compressed_size_bytes,
                    "tiers": [{"tier": t.tier, "key": t.key, "format": t.format,
                               "compression": t.compression, "width": t.width, "height": t.height,
                               "size_bytes": t.size_bytes, "segment_index": t.segment_index,
                               "segment_frames": t.segment_frames} for t in frame.tiers]}
            self._queue_frame(pipe, batch.robot_id, batch.session_id, batch.camera_id,
                              frame.timestamp, kind, urls, meta)
        return len(batch.frames)

    def _queue_stats(self, pipe: Any, stats: WindowStats) -> int:
        window = self.settings.redis.latest_window
        channels = keys.live_channels(stats.robot_id, stats.session_id, "stats")
        aggregates = list(stats.aggregates())
        for agg in aggregates:  # check every name before queueing anything of this record
            keys.validate_metric(agg.metric)
        for agg in aggregates:
            self._eval(pipe, self._stats, [keys.stats_key(agg.robot_id, agg.session_id, agg.metric,
                                                          agg.resolution)],
                       [agg.window_start, canonical_json(asdict(agg)), window,
                        stats_ttl_s(agg.resolution, window), *channels])
        return len(aggregates)

    def _queue_log(self, pipe: Any, envelope: Envelope) -> int:
        key = keys.log_key(envelope.robot_id, envelope.session_id)
        self._eval(pipe, self._log, [key],
                   [envelope.timestamp_us, log_message(envelope), self.settings.redis.latest_window,
                    LATEST_TTL_S, *keys.live_channels(envelope.robot_id, envelope.session_id, DataType.LOG)])
        return 1

    def _queue(self, pipe: Any, record: SinkRecord) -> int:
        """Queue the commands of one record; returns how many (0: nothing for this sink)."""
        item = record.item
        if isinstance(item, Envelope) and item.data_type is DataType.IMAGES:
            return self._queue_image(pipe, item)
        if isinstance(item, Envelope) and item.data_type is DataType.LOG:
            return self._queue_log(pipe, item)
        if isinstance(item, FrameBatch):
            return self._queue_frame_batch(pipe, item)
        if isinstance(item, WindowStats):
            return self._queue_stats(pipe, item)
        return 0

    # -- write ---------------------------------------------------------------------------------

    def write(self, batch: Sequence[SinkRecord]) -> None:
        """Run the batch's commands in pipelines of ``PIPELINE_CHUNK`` records."""
        for start in range(0, len(batch), PIPELINE_CHUNK):
            self._write_chunk(batch[start:start + PIPELINE_CHUNK])

    def _write_chunk(self, chunk: Sequence[SinkRecord]) -> None:
        pipe = self.client.pipeline(transaction=False)
        queued: list[list[SinkRecord]] = []  # the records behind each queued command
        rings: dict[str, _Ring] = {}  # telemetry per session, queued after a first phase
        # sessions of the chunk's images and log lines (a robot that so far sends only log lines
        # is running too): sessions:live updated once per session, at its newest item
        seen: dict[tuple[str, str], list[SinkRecord]] = {}
        for record in chunk:
            before = len(pipe)
            try:
                if isinstance(record.item, Telemetry):
                    self._collect_telemetry(rings, record)
                    continue
                count = self._queue(pipe, record)
            except (ValueError, KeyError, TypeError) as exc:
                del pipe.command_stack[before:]  # drop a record's half-queued commands
                self._report(record, PoisonRecordError(f"cannot map record to Redis: {exc}"))
                continue
            queued.extend([[record]] * count)
            item = record.item
            if count and isinstance(item, Envelope) and item.data_type in (DataType.IMAGES, DataType.LOG):
                seen.setdefault((item.robot_id, item.session_id), []).append(record)
        for (robot_id, session_id), records in seen.items():
            newest = max(r.item.timestamp_us for r in records)
            queued.extend([records] * self._queue_session_seen(pipe, robot_id, session_id, newest))
        stored = self._stored_buckets(rings) if rings else set()
        for ring in rings.values():
            queued.extend(self._queue_ring(pipe, ring, stored))
        if not queued:
            return
        commands = list(pipe.command_stack)
        results = self._execute(pipe)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis lost our scripts: load, rerun
            self._run(self._load_scripts)
            pipe = self.client.pipeline(transaction=False)
            pipe.command_stack.extend(commands)  # every script stores idempotently: a rerun is safe
            results = self._execute(pipe)
        self._check_results(queued, results)

    def _execute(self, pipe: Any) -> list[Any]:
        result: list[Any] = self._run(lambda: pipe.execute(raise_on_error=False))
        return result

    @staticmethod
    def _run(call: Any) -> Any:
        """``call()``; Redis trouble worth waiting out becomes :class:`RetriableSinkError`."""
        try:
            return call()
        except RedisError as exc:
            if is_retriable(exc):
                raise RetriableSinkError(f"Redis unavailable: {exc}") from exc
            raise

    def _check_results(self, queued: list[list[SinkRecord]], results: list[Any]) -> None:
        errors = [(records, e) for records, e in zip(queued, results, strict=True)
                  if isinstance(e, Exception)]
        retriable = [e for _, e in errors if is_retriable(e)]
        if retriable:
            raise RetriableSinkError(f"Redis unavailable: {retriable[0]}") from retriable[0]
        first_error: dict[int, tuple[SinkRecord, Exception]] = {}
        for records, exc in errors:
            for record in records:
                first_error.setdefault(id(record), (record, exc))
        for record, exc in first_error.values():
            self._report(record, PoisonRecordError(f"Redis rejected the record: {exc}"))

    def _report(self, record: SinkRecord, exc: BaseException) -> None:
        if self._context is None:
            raise exc
        self._context.report(record, exc)
