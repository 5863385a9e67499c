"""The frame compactor the ``frames`` agent runs: camera frames encoded in a process pool.

A plain class driven by :class:`robostream.processors.app.ProcessorApp`. It holds the acks of the
frames of an open H.264 segment until the segment is encoded and delivered, so a restart re-reads
them and re-encodes the same segment (same keys, same bytes) instead of losing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from robostream.processors.compaction.bundles import bundle_key, bundle_part
from robostream.processors.compaction.jobs import (
    CompactionJob,
    CompactionParams,
    CompactionResult,
    SourceFrame,
    run_job,
)
from robostream.processors.compaction.pool import EncoderPool
from robostream.processors.outputs import CaughtUp, Outputs, always_caught_up
from robostream.processors.records import BundlePart, FrameBatch, FrameKind, StoredObject
from robostream.processors.throughput import Throughput
from robostream.schemas import DataType, SchemaIdResolver, ValidationError, decode_record
from robostream.times import HOUR_US

log = logging.getLogger("robostream.processors")


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
    """One session's state: the open hour of its bundle, the jobs still writing parts of it, and the
    source partition of its frames."""

    hour: int
    last_ts: int
    last_active: float
    partition: int
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
        self.caught_up = caught_up or always_caught_up
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
            if self._new_hour(robot, session, frame.timestamp):  # earlier frames go first
                for group_key in [g for g in groups if g[:2] == (robot, session)]:
                    await self._submit(*group_key, *groups.pop(group_key))
            await self._track_hour(robot, session, frame.timestamp, message.partition)
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

    async def _track_hour(self, robot: str, session: str, timestamp: int, partition: int) -> None:
        hour = timestamp - timestamp % HOUR_US
        bundle = self.bundles.get((robot, session))
        now = time.monotonic()
        if bundle is None:
            self.bundles[(robot, session)] = _Bundle(hour, timestamp, now, partition)
            return
        bundle.last_active = now
        bundle.partition = partition
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
        partitions = {self.bundles[key].partition for key in {c[:2] for c in quiet} | set(silent)}
        caught_up = await self.caught_up(partitions)
        for camera in quiet:  # silence ends a segment only when no backlog is left to read
            if self.bundles[camera[:2]].partition in caught_up:
                await self._flush(camera)
        for robot, session in silent:
            bundle = self.bundles[(robot, session)]
            if bundle.partition not in caught_up:
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
