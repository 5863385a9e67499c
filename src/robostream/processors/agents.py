"""The stream logic the Faust agents run: telemetry (bucketing + windows) and frame compaction.

Both are plain classes driven by :class:`robostream.processors.app.ProcessorApp`, which owns
the Faust app, topics, table and producer.

Order per telemetry batch (what makes restarts exact): decode -> skip duplicates (seq) -> fold
into windows (and bucket, if ``processors.bucketed_output``) -> produce the closed windows (and
buckets) and **wait for their delivery** -> write the session states as they were after the batch
to the table (memory store + changelog) -> ack. A crash before the state write replays the batch
(outputs again, identical: sinks are idempotent); after it, the state already holds the batch and
the replayed records are skipped as duplicates. The waiting part runs beside the stream, batch
after batch in order: the next batches are folded meanwhile (their states are only written after).

Frame compaction holds the acks of the frames of an open H.264 segment until the segment is
encoded and delivered, so a restart re-reads them and re-encodes the same segment (same keys,
same bytes) instead of losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from robostream.processors import wire
from robostream.processors.aggregations import ClosedWindow, SessionWindows
from robostream.processors.bucketing import bucket_records
from robostream.processors.columns import TelemetryColumns, TimeSeriesReader
from robostream.processors.compaction.bundles import bundle_key, bundle_part
from robostream.processors.compaction.jobs import (
    CompactionJob,
    CompactionParams,
    CompactionResult,
    SourceFrame,
    run_job,
)
from robostream.processors.compaction.pool import EncoderPool
from robostream.processors.ordering import OffsetOrder
from robostream.processors.records import (
    HOUR_US,
    BundlePart,
    DerivedCodec,
    FrameBatch,
    FrameKind,
    StoredObject,
    TelemetryBucket,
    WindowStats,
)
from robostream.processors.throughput import Throughput
from robostream.schemas import WIRE_HEADER, DataType, SchemaIdResolver, ValidationError, decode_record

log = logging.getLogger("robostream.processors")

_PARTITION = struct.Struct(">i")
DLQ_PREFIX = "__connect.errors."


class Message(Protocol):
    """What the agents need of a consumed Kafka message (Faust's ``Message``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


Send = Callable[[str, bytes, bytes, list[tuple[str, bytes]] | None], Awaitable[Awaitable[Any]]]
#: ``ack(messages)``: acknowledge consumed records (their offsets may be committed).
AckMany = Callable[[list[Any]], Awaitable[None]]
#: ``caught_up(partitions)``: the partitions whose every record up to the end is processed.
CaughtUp = Callable[[set[int]], Awaitable[set[int]]]


async def _always(partitions: set[int]) -> set[int]:
    return partitions


@dataclass
class Outputs:
    """Where the agents write: topic names, the codec, and the producer's send."""

    send: Send
    codec: DerivedCodec
    bucketed_topic: str
    stats_topics: dict[str, str]
    frames_topic: str
    dlq_topic: str
    app_id: str
    max_message_bytes: int

    @property
    def bucket_schema_id(self) -> int:
        return self.codec.schema_id(self.bucketed_topic, TelemetryBucket)

    @property
    def stats_schema_ids(self) -> dict[str, int]:
        return {r: self.codec.schema_id(t, WindowStats) for r, t in self.stats_topics.items()}

    async def dead_letter(self, message: Message, exc: BaseException, metrics: Throughput) -> None:
        """Copy a record the processors cannot use to the DLQ with Kafka Connect's context headers."""
        log.warning("record %s[%d]@%d sent to the DLQ: %s", message.topic, message.partition,
                    message.offset, exc)
        cause = exc.__cause__ or exc
        trace = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        headers = [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in _headers(message)]
        headers += [(DLQ_PREFIX + name, value.encode("utf-8", "replace")) for name, value in (
            ("topic", message.topic), ("partition", str(message.partition)),
            ("offset", str(message.offset)), ("connector.name", self.app_id),
            ("stage", "PROCESSOR"), ("class.name", "robostream.processors"),
            ("exception.class.name", type(cause).__name__), ("exception.message", str(cause)),
            ("exception.stacktrace", trace[-8192:]),
        )]
        await (await self.send(self.dlq_topic, message.key or b"", message.value or b"", headers))
        metrics.add("dlq")


def _headers(message: Message) -> list[tuple[str, Any]]:
    headers = message.headers or []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


# --- telemetry ----------------------------------------------------------------------------------


class TableStore(Protocol):
    """The slice of a Faust table the telemetry agent uses (store + explicit changelog)."""

    def get(self, key: bytes) -> bytes | None: ...
    def put(self, partition: int, key: bytes, value: bytes) -> None: ...
    def list_keys(self) -> list[bytes]: ...


class TelemetryProcessor:
    """Buckets telemetry and keeps tumbling windows per robot session (state in a table)."""

    def __init__(
        self, *, reader: TimeSeriesReader, resolver: SchemaIdResolver, outputs: Outputs,
        table: TableStore, metrics: Throughput, lateness_us: int, idle_s: float,
        executor: Executor | None = None, ready: Callable[[], bool] = lambda: True,
        caught_up: CaughtUp | None = None, order: OffsetOrder | None = None,
        bucketed: bool = False, max_inflight: int = 4,
    ) -> None:
        self.reader = reader
        self.bucketed = bucketed  # also write TelemetryBucket records (processors.bucketed_output)
        self.ready = ready
        self.caught_up = caught_up or _always
        self.order = order or OffsetOrder()
        self.processed: dict[int, int] = {}  # partition -> next offset (all before: processed)
        self.resolver = resolver
        self.outputs = outputs
        self.table = table
        self.metrics = metrics
        self.lateness_us = lateness_us
        self.idle_s = idle_s
        self.executor = executor
        self.lock = asyncio.Lock()
        self.sessions: dict[bytes, SessionWindows] = {}
        self.partition_of: dict[bytes, int] = {}
        self._partitions: dict[bytes, int] = {}  # survives rebalances: a key's partition never changes
        self.last_active: dict[bytes, float] = {}
        self.active_partitions: set[int] | None = None  # None: all (no rebalance seen yet)
        self._known_ids: set[int] = set()
        self.slots = asyncio.Semaphore(max_inflight)  # batches folded but not yet complete
        self._inflight: set[asyncio.Future[None]] = set()
        self._last_completion: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None

    # -- batches --

    async def process(self, batch: Sequence[Message], ack: AckMany | None = None) -> None:
        """Handle one ``stream.take()`` batch of time_series records; ``ack(messages)`` is called
        once the batch is done (outputs delivered, then session states written).

        The batch is folded now; its completion (wait for the delivery of its outputs, write the
        states of its sessions as they were after this batch, ack) runs in the background, in batch
        order, while the next batches are folded: the stream does not wait for broker round trips.
        At most ``max_inflight`` batches are incomplete; :meth:`drain` waits for all of them.

        Records out of offset order (Faust re-deliveries around rebalances) are left to
        :class:`~robostream.processors.ordering.OffsetOrder`: only in-order ones are folded.
        """
        self._raise_failed()
        messages, to_ack = await self.order.sort(batch)
        await self._resolve_schemas(messages)
        by_key: dict[bytes, list[TelemetryColumns]] = {}
        partitions: dict[int, int] = {}  # partition -> next offset after this batch
        partition_of = self.partition_of
        read = self.reader.read
        for message in messages:
            try:
                columns = read(message.value or b"")
            except ValidationError as exc:
                await self.outputs.dead_letter(message, exc, self.metrics)
                continue
            key = columns.key.encode()
            records = by_key.get(key)
            if records is None:
                by_key[key] = [columns]
                partition_of[key] = self._partitions[key] = message.partition
            else:
                records.append(columns)
        for message in messages:  # in offset order per partition: the last one is the highest
            partitions[message.partition] = message.offset + 1
        await self.slots.acquire()
        try:
            async with self.lock:
                pending, states = await self._fold_batch(by_key)
        except BaseException:
            self.slots.release()
            raise
        previous = self._last_completion
        task = asyncio.ensure_future(self._complete(previous, pending, states, partitions, to_ack, ack))
        self._last_completion = task
        self._inflight.add(task)
        task.add_done_callback(self._completed)

    async def _complete(self, previous: asyncio.Future[None] | None, pending: list[Awaitable[Any]],
                        states: list[tuple[int, bytes, bytes]], partitions: dict[int, int],
                        to_ack: list[Message], ack: AckMany | None) -> None:
        """Outputs delivered -> states written -> acked; after the previous batch's completion."""
        try:
            if previous is not None:
                await previous  # raises if it failed: then nothing of this batch is saved or acked
            if pending:
                await asyncio.gather(*pending)
            put = self.table.put
            for partition, key, value in states:
                put(partition, key, value)
            processed = self.processed
            for partition, offset in partitions.items():
                processed[partition] = max(processed.get(partition, -1), offset)
            if ack is not None and to_ack:
                await ack(to_ack)
        finally:
            self.slots.release()

    def _completed(self, task: asyncio.Future[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failed is None:
            self._failed = task.exception()

    def _raise_failed(self) -> None:
        if self._failed is not None:
            raise self._failed

    async def drain(self) -> None:
        """Wait until every batch handed to :meth:`process` is complete (delivered, saved, acked)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        self._raise_failed()

    async def _fold_batch(
        self, by_key: dict[bytes, list[TelemetryColumns]]
    ) -> tuple[list[Awaitable[Any]], list[tuple[int, bytes, bytes]]]:
        """Fold each session's records; the outputs' deliveries and the states to write after."""
        pending: list[Awaitable[Any]] = []
        states = []
        now = time.monotonic()
        last_active = self.last_active
        counts = {"telemetry_records": 0, "telemetry_points": 0, "duplicates": 0, "late_samples": 0}
        for key, records in by_key.items():
            session = self._session(key, records[0])
            pending += await self._fold(key, session, records, counts)
            last_active[key] = now
            states.append(self._state(key, session))
        add = self.metrics.add
        for name, amount in counts.items():
            if amount:
                add(name, amount)
        return pending, states

    async def _fold(self, key: bytes, session: SessionWindows, records: list[TelemetryColumns],
                    counts: dict[str, int]) -> list[Any]:
        before = (session.duplicates, session.late)
        fresh = session.fresh(records)
        pending = []
        if fresh and self.bucketed:
            for bucket in bucket_records(fresh):
                value = wire.telemetry_bucket(self.outputs.bucket_schema_id, bucket)
                pending.append(await self.outputs.send(self.outputs.bucketed_topic, key, value, None))
                self.metrics.add("buckets_out")
        if fresh:
            session.add(fresh)
        closed = session.close_ready()
        if closed:
            pending += await self._emit(key, closed)
        counts["telemetry_records"] += len(records)
        counts["telemetry_points"] += sum(len(r) for r in fresh)
        counts["duplicates"] += session.duplicates - before[0]
        counts["late_samples"] += session.late - before[1]
        return pending

    async def _emit(self, key: bytes, closed: list[ClosedWindow]) -> list[Any]:
        pending = []
        for window in closed:
            topic = self.outputs.stats_topics[window.resolution.value]
            value = wire.window_stats(self.outputs.stats_schema_ids[window.resolution.value], window)
            pending.append(await self.outputs.send(topic, key, value, None))
            self.metrics.add("windows_out")
            self.metrics.add(f"windows_out.{window.resolution.value}")
        return pending

    async def _resolve_schemas(self, messages: Sequence[Message]) -> None:
        """Fetch unknown writer schemas in an executor (the registry client blocks)."""
        unknown = set()
        for message in messages:
            value = message.value or b""
            if len(value) >= WIRE_HEADER.size:
                schema_id = WIRE_HEADER.unpack_from(value)[1]
                if schema_id not in self._known_ids:
                    unknown.add(schema_id)
        loop = asyncio.get_running_loop()
        for schema_id in unknown:
            with contextlib.suppress(LookupError):  # reported per record (unknown_schema)
                await loop.run_in_executor(self.executor, self.resolver.schema_for, schema_id)
            self._known_ids.add(schema_id)

    # -- state --

    def _session(self, key: bytes, first: TelemetryColumns) -> SessionWindows:
        session = self.sessions.get(key)
        if session is None:
            stored = self.table.get(key)
            if stored is not None:
                session = SessionWindows.load(stored[_PARTITION.size:], self.lateness_us)
            else:
                session = SessionWindows(first.robot_id, first.session_id, self.lateness_us)
            self.sessions[key] = session
        return session

    def _state(self, key: bytes, session: SessionWindows) -> tuple[int, bytes, bytes]:
        """``(partition, key, value)`` of the session's table entry as it is now."""
        partition = self.partition_of.get(key, self._partitions.get(key, 0))
        return partition, key, _PARTITION.pack(partition) + session.dump()

    def _save(self, key: bytes, session: SessionWindows) -> None:
        self.table.put(*self._state(key, session))

    # -- idle sessions and rebalances --

    async def close_idle(self) -> None:
        """Close windows of sessions silent for ``idle_s`` whose end the clock has passed."""
        if not self.ready():  # rebalancing: the table may be half recovered
            return
        async with self.lock:
            await self.drain()  # states written here must not run ahead of a batch's outputs
            now = time.monotonic()
            self._adopt_recovered(now)
            pending: list[Any] = []
            touched = {}
            idle_keys = [k for k, s in self.sessions.items()
                         if s.open_windows and now - self.last_active.get(k, now) >= self.idle_s]
            # silence means idle only with no backlog: a restarted worker may not have read it yet
            caught_up = await self.caught_up({self._partitions[k] for k in idle_keys})
            if not self.ready():  # a rebalance started meanwhile
                return
            for key in idle_keys:
                session = self.sessions.get(key)  # a rebalance may have cleared the cache meanwhile
                if session is None:
                    continue
                idle = now - self.last_active.get(key, now)
                if self._partitions[key] not in caught_up:
                    self.last_active[key] = now  # the silence starts once the backlog is read
                    continue
                closed = session.close_idle(session.watermark + int(idle * 1_000_000))
                if closed:
                    pending += await self._emit(key, closed)
                    touched[key] = session
            await asyncio.gather(*pending)
            for key, session in touched.items():
                self._save(key, session)

    def _adopt_recovered(self, now: float) -> None:
        """Sessions recovered from the changelog but silent since: track them for idle closing."""
        for key in self.table.list_keys():
            if key in self.sessions:
                continue
            stored = self.table.get(key)
            if stored is None or len(stored) < _PARTITION.size:
                continue
            partition = _PARTITION.unpack_from(stored)[0]
            if self.active_partitions is not None and partition not in self.active_partitions:
                continue
            self.sessions[key] = SessionWindows.load(stored[_PARTITION.size:], self.lateness_us)
            self.partition_of[key] = self._partitions[key] = partition
            self.last_active[key] = now

    def on_assignment(self, partitions: set[int]) -> None:
        """A rebalance: forget every cached session (the table is recovered, then re-read)."""
        self.active_partitions = set(partitions)
        self.order.reset()
        self.sessions.clear()
        self.partition_of.clear()
        self.last_active.clear()


# --- frames -------------------------------------------------------------------------------------


@dataclass
class _Segment:
    """An open H.264 segment of one camera: its frames and their un-acked events."""

    frames: list[SourceFrame] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    last_active: float = 0.0

    @property
    def hour(self) -> int:
        first = self.frames[0].timestamp
        return first - first % HOUR_US


@dataclass
class _Bundle:
    """The open hour of one session's bundle, and the jobs still writing parts of it."""

    hour: int
    last_ts: int
    last_active: float
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    closed_hours: set[int] = field(default_factory=set)


Ack = Callable[[Any], Awaitable[Any]]


class FrameCompactor:
    """Compacts camera frames in a process pool; outputs :class:`FrameBatch` records."""

    def __init__(
        self, *, resolver: SchemaIdResolver, outputs: Outputs, metrics: Throughput,
        params: CompactionParams, pool: EncoderPool, ack: Ack, segment_frames: int,
        segment_gap_s: float, lateness_us: int, idle_s: float, max_inflight: int,
        caught_up: CaughtUp | None = None,
    ) -> None:
        self.caught_up = caught_up or _always
        self.processed: dict[int, int] = {}  # partition -> next offset to read (all before: read)
        self.resolver = resolver
        self.outputs = outputs
        self.metrics = metrics
        self.params = params
        self.pool = pool
        self.ack = ack
        self.segment_frames = segment_frames
        self.segment_gap_us = int(segment_gap_s * 1_000_000)
        self.segment_gap_s = segment_gap_s
        self.lateness_us = lateness_us
        self.idle_s = idle_s
        self.segments: dict[tuple[str, str, str], _Segment] = {}
        self.bundles: dict[tuple[str, str], _Bundle] = {}
        self.partition_of: dict[tuple[str, str], int] = {}
        self.inflight: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(max_inflight)
        self.lock = asyncio.Lock()

    async def process(self, events: Sequence[Any]) -> None:
        """Handle one batch of images events (not acked: acked after their job is delivered)."""
        async with self.lock:
            await self._process(events)

    async def _process(self, events: Sequence[Any]) -> None:
        groups: dict[tuple[str, str, str, FrameKind], tuple[list[SourceFrame], list[Any]]] = {}
        for event in events:
            message = event.message
            # Every record read counts, including the ones acked at once below (dead letters,
            # skipped kinds): "caught up" must not wait for a record that is never coming.
            self.processed[message.partition] = max(self.processed.get(message.partition, -1),
                                                    message.offset + 1)
            try:
                envelope = decode_record(message.value or b"", self.resolver)
                if envelope.data_type is not DataType.IMAGES:
                    raise ValueError(f"expected an images record, got {envelope.data_type}")
            except (ValidationError, ValueError) as exc:
                await self.outputs.dead_letter(message, exc, self.metrics)
                await self.ack(event)
                continue
            payload = envelope.payload
            kind = payload["kind"]
            if kind not in ("rgb", "depth", "pointcloud"):
                self.metrics.add("frames_skipped")
                await self.ack(event)
                continue
            frame = _source_frame(envelope.seq, envelope.timestamp_us, payload)
            self.metrics.add("frames_in")
            robot, session = envelope.robot_id, envelope.session_id
            camera = (robot, session, payload["camera_id"])
            self.partition_of[(robot, session)] = message.partition
            if self._new_hour(robot, session, frame.timestamp):  # earlier frames go first
                for group_key in [g for g in groups if g[:2] == (robot, session)]:
                    await self._submit(*group_key, *groups.pop(group_key))
            await self._track_hour(robot, session, frame.timestamp)
            if kind == "rgb":
                await self._add_rgb(camera, frame, event)
            else:
                group = groups.setdefault((*camera, FrameKind(kind)), ([], []))
                group[0].append(frame)
                group[1].append(event)
        for (robot, session, camera_id, kind), (frames, evs) in groups.items():
            await self._submit(robot, session, camera_id, kind, frames, evs)

    async def _add_rgb(self, camera: tuple[str, str, str], frame: SourceFrame, event: Any) -> None:
        segment = self.segments.get(camera)
        if segment is not None and segment.frames and self._ends_segment(segment, frame):
            await self._flush(camera)
            segment = None
        if segment is None:
            segment = self.segments[camera] = _Segment(size=(frame.width, frame.height))
        segment.frames.append(frame)
        segment.events.append(event)
        segment.last_active = time.monotonic()
        if len(segment.frames) >= self.segment_frames:
            await self._flush(camera)

    def _ends_segment(self, segment: _Segment, frame: SourceFrame) -> bool:
        """Segment boundaries depend on the frames only (same segments after a replay)."""
        last = segment.frames[-1].timestamp
        return (
            (frame.width, frame.height) != segment.size
            or not 0 <= frame.timestamp - last <= self.segment_gap_us
            or frame.timestamp - frame.timestamp % HOUR_US != segment.hour
        )

    async def _flush(self, camera: tuple[str, str, str]) -> None:
        segment = self.segments.pop(camera, None)
        if segment is None or not segment.frames:
            return
        await self._submit(*camera, FrameKind.RGB, segment.frames, segment.events)

    async def _submit(self, robot: str, session: str, camera_id: str, kind: FrameKind,
                      frames: list[SourceFrame], events: list[Any]) -> None:
        """Run a job in the pool without blocking the stream (bounded by ``max_inflight``)."""
        hour = frames[0].timestamp - frames[0].timestamp % HOUR_US
        bundle = self.bundles.get((robot, session))
        in_bundle = bundle is None or hour not in bundle.closed_hours
        job = CompactionJob(robot, session, camera_id, kind, tuple(frames), self.params, in_bundle)
        await self.slots.acquire()
        task = asyncio.create_task(self._run(job, events))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        if bundle is not None and bundle.hour == hour:
            bundle.pending.add(task)
            task.add_done_callback(bundle.pending.discard)

    async def _run(self, job: CompactionJob, events: list[Any]) -> None:
        try:
            result: CompactionResult = await self.pool.run(run_job, job)
            await self._deliver(job, result)
            self._count(job, result)
        except Exception as exc:  # a job that cannot be encoded: its records go to the DLQ
            log.exception("compaction of %d %s frame(s) of %s/%s/%s failed", len(job.frames),
                          job.kind.value, job.robot_id, job.session_id, job.camera_id)
            for event in events:
                await self.outputs.dead_letter(event.message, exc, self.metrics)
        finally:
            for event in events:
                await self.ack(event)
            self.slots.release()

    async def _deliver(self, job: CompactionJob, result: CompactionResult) -> None:
        parts = []
        if result.bundle_content:
            first = job.frames[0].timestamp
            parts.append(BundlePart(
                bundle_key(job.robot_id, job.session_id, first - first % HOUR_US),
                f"{first:020d}-{job.camera_id}-{job.kind.value}", False, result.bundle_members,
                result.bundle_content,
            ))
        batch = FrameBatch(job.robot_id, job.session_id, job.camera_id, job.kind,
                           result.objects, result.frames, parts)
        await self._send_batches(split_batch(batch, self.outputs.max_message_bytes - 64 * 1024))

    async def _send_batches(self, batches: list[FrameBatch]) -> None:
        pending = []
        for batch in batches:
            value = self.outputs.codec.encode(self.outputs.frames_topic, batch)
            pending.append(await self.outputs.send(self.outputs.frames_topic, batch.key, value, None))
        await asyncio.gather(*pending)
        self.metrics.add("frame_batches_out", len(batches))

    def _count(self, job: CompactionJob, result: CompactionResult) -> None:
        kind = job.kind.value
        self.metrics.add("frames_out", len(result.frames))
        self.metrics.add(f"source_bytes.{kind}", result.source_bytes)
        self.metrics.add(f"raw_bytes.{kind}", result.raw_bytes)
        self.metrics.add(f"compressed_bytes.{kind}", sum(f.compressed_size_bytes for f in result.frames))
        for tier, seconds in result.seconds.items():
            name = f"{kind}.{tier}"
            self.metrics.add_seconds("encode_seconds." + name, seconds)
            self.metrics.add("encoded_frames." + name, len(job.frames))

    # -- bundles: one open hour per session --

    def _new_hour(self, robot: str, session: str, timestamp: int) -> bool:
        bundle = self.bundles.get((robot, session))
        return bundle is not None and timestamp - timestamp % HOUR_US > bundle.hour

    async def _track_hour(self, robot: str, session: str, timestamp: int) -> None:
        hour = timestamp - timestamp % HOUR_US
        bundle = self.bundles.get((robot, session))
        now = time.monotonic()
        if bundle is None:
            self.bundles[(robot, session)] = _Bundle(hour, timestamp, now)
            return
        bundle.last_active = now
        bundle.last_ts = max(bundle.last_ts, timestamp)
        if hour > bundle.hour:
            for camera in [c for c in self.segments if c[:2] == (robot, session)]:
                if self.segments[camera].hour == bundle.hour:
                    await self._flush(camera)
            await self._close_bundle(robot, session, bundle)
            bundle.hour = hour

    async def _close_bundle(self, robot: str, session: str, bundle: _Bundle) -> None:
        """Emit the hour's last part once every job writing parts of it has delivered."""
        if bundle.hour in bundle.closed_hours:
            return
        bundle.closed_hours.add(bundle.hour)
        if not self.params.bundles:
            return
        if bundle.pending:
            await asyncio.gather(*list(bundle.pending), return_exceptions=True)
        end = bundle.hour + HOUR_US
        last = BundlePart(bundle_key(robot, session, bundle.hour), f"{end:020d}-~end", True, [],
                          bundle_part([], last=True))
        await self._send_batches([FrameBatch(robot, session, "", FrameKind.RGB, [], [], [last])])
        self.metrics.add("bundles_closed")

    async def close_idle(self) -> None:
        """Flush segments of silent cameras; close bundles whose hour the clock has passed."""
        async with self.lock:
            await self._close_idle()

    async def _close_idle(self) -> None:
        now = time.monotonic()
        quiet = [c for c, seg in self.segments.items() if now - seg.last_active >= self.segment_gap_s]
        silent = [k for k, b in self.bundles.items()
                  if now - b.last_active >= self.idle_s and b.hour not in b.closed_hours]
        partitions = {self.partition_of[c[:2]] for c in quiet} | {self.partition_of[k] for k in silent}
        caught_up = await self.caught_up(partitions)
        for camera in quiet:  # silence ends a segment only when no backlog is left to read
            if self.partition_of[camera[:2]] in caught_up:
                await self._flush(camera)
        for robot, session in silent:
            bundle = self.bundles[(robot, session)]
            if self.partition_of[(robot, session)] not in caught_up:
                bundle.last_active = now
                continue
            idle = now - bundle.last_active
            if bundle.last_ts + int(idle * 1_000_000) >= bundle.hour + HOUR_US + self.lateness_us:
                await self._close_bundle(robot, session, bundle)

    def on_assignment(self, partitions: set[int]) -> None:
        """Drop open segments of partitions now owned elsewhere (their frames are not acked:
        the new owner re-reads and encodes them)."""
        for camera, segment in list(self.segments.items()):
            if any(e.message.partition not in partitions for e in segment.events):
                del self.segments[camera]

    async def drain(self) -> None:
        """Flush every open segment and wait for all jobs (shutdown)."""
        for camera in list(self.segments):
            await self._flush(camera)
        if self.inflight:
            await asyncio.gather(*list(self.inflight), return_exceptions=True)


def _source_frame(seq: int, timestamp: int, payload: dict[str, Any]) -> SourceFrame:
    blob = payload["blob"]
    content = blob["content"]
    inline = isinstance(content, bytes | bytearray | memoryview)
    return SourceFrame(
        seq=seq, timestamp=timestamp, fmt=blob["format"], width=payload["width"],
        height=payload["height"], size=blob["size_bytes"],
        content=bytes(content) if inline else None,
        ref=None if inline else (content["bucket"], content["key"]),
    )


def split_batch(batch: FrameBatch, limit: int) -> list[FrameBatch]:
    """Split a batch so that each piece's blobs stay under ``limit`` bytes (frames go last).

    Raises ``ValueError`` when one object alone is over the limit.
    """
    blobs = sum(o.size_bytes for o in batch.objects) + sum(len(p.content) for p in batch.bundle_parts)
    if blobs <= limit:
        return [batch]
    pieces: list[FrameBatch] = []
    objects: list[StoredObject] = []
    parts: list[BundlePart] = []
    size = 0

    def cut() -> None:
        nonlocal objects, parts, size
        if objects or parts:
            pieces.append(FrameBatch(batch.robot_id, batch.session_id, batch.camera_id, batch.kind,
                                     objects, [], parts))
        objects, parts, size = [], [], 0

    items: list[StoredObject | BundlePart] = [*batch.objects, *batch.bundle_parts]
    for item in items:
        length = item.size_bytes if not isinstance(item, BundlePart) else len(item.content)
        if length > limit:
            raise ValueError(f"an encoded object of {length} bytes exceeds the {limit}-byte message limit")
        if size + length > limit:
            cut()
        if isinstance(item, BundlePart):
            parts.append(item)
        else:
            objects.append(item)
        size += length
    cut()
    last = pieces[-1]
    pieces[-1] = FrameBatch(last.robot_id, last.session_id, last.camera_id, last.kind,
                            last.objects, batch.frames, last.bundle_parts)
    return pieces
