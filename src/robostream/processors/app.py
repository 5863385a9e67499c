"""The Faust app: built from :class:`~robostream.config.Settings`, run by ``robostream process``.

* Source topics ``<prefix>.time_series`` and ``<prefix>.images`` (created by ``robostream topics
  create``; auto-creation is off on the broker). Workers of the same ``processors.app_id`` form
  one consumer group and split the partitions.
* One table, ``telemetry-windows`` (memory store, changelog topic
  ``<app_id>-telemetry-windows-changelog`` created by Faust, compacted, as many partitions as
  the source topic): the window state of every robot session, recovered on start and rebalance.
* Outputs on the derived topics (``robostream.topics``), values in the Confluent wire format
  (:mod:`robostream.processors.records`).
* Frame encoding runs in a process pool (``processors.pool_workers``), off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from robostream.config import Settings
from robostream.processors import faust_adapter as fa
from robostream.processors.columns import TimeSeriesReader
from robostream.processors.compaction.jobs import CompactionParams, S3Access
from robostream.processors.compaction.pool import EncoderPool
from robostream.processors.frames import FrameCompactor
from robostream.processors.ordering import OffsetOrder
from robostream.processors.outputs import CaughtUp, Outputs
from robostream.processors.records import DerivedCodec, FrameBatch, TelemetryBucket, WindowStats
from robostream.processors.telemetry import TelemetryProcessor
from robostream.processors.throughput import Throughput, write_status
from robostream.schemas import ConfluentSchemaResolver, DataType, SchemaIdResolver
from robostream.topics import (
    StatsResolution,
    bucketed_telemetry_topic,
    dlq_topic,
    frames_topic,
    stats_topic,
    topic_for,
)

log = logging.getLogger("robostream.processors")

TABLE_NAME = "telemetry-windows"
FRAME_BATCH_MAX = 64


def compaction_params(settings: Settings) -> CompactionParams:
    """Encoder settings from ``settings.processors`` (and S3 access for claim-checked frames)."""
    p = settings.processors
    s3 = settings.s3
    return CompactionParams(
        gop=p.keyframe_interval, crf=p.h264_crf, preset=p.h264_preset, preview=p.preview,
        thumbnail=p.thumbnail, png_level=p.png_level, draco_bits=p.draco_quantization_bits,
        draco_level=p.draco_compression_level, bundles=p.bundles,
        s3=S3Access(s3.endpoint, s3.region, s3.access_key, s3.secret_key.get_secret_value()),
    )


async def _ack(events: Sequence[Any], ack_event: Callable[[Any], Awaitable[Any]],
               messages: list[Any]) -> None:
    """Ack the events of ``messages`` (all of the batch, but for records left for a re-fetch)."""
    if len(messages) == len(events):
        for event in events:
            await ack_event(event)
        return
    done = {id(m) for m in messages}
    for event in events:
        if id(event.message) in done:
            await ack_event(event)


def faust_app(settings: Settings, partitions: int) -> faust.App:
    """The Faust app of ``processors.app_id`` (consumer, producer and stream settings), no agents.

    The benchmark's do-nothing agent runs on the same app, so it reads exactly as the worker."""
    s = settings
    p = s.processors
    compression = None if s.kafka.compression == "none" else s.kafka.compression
    max_bytes = s.topics.max_message_bytes + 64 * 1024
    datadir = s.state_dir / "processors"  # Faust's app folder (empty with the memory store)
    datadir.mkdir(parents=True, exist_ok=True)
    fa.check_faust_internals()  # before any of them is used: fail now, naming the version
    app = fa.RewindingApp(
        p.app_id,
        broker=[f"kafka://{host.strip()}" for host in s.kafka.bootstrap.split(",")],
        store="memory://",
        datadir=str(datadir / "{conf.name}-data"),
        web_enabled=p.web_port is not None,
        web_port=p.web_port or 6066,
        web_host="127.0.0.1",
        topic_replication_factor=s.kafka.replication_factor,
        topic_partitions=partitions,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        producer_compression_type=compression,
        producer_linger_ms=s.kafka.linger_ms,
        producer_max_request_size=max_bytes,
        consumer_max_fetch_size=max_bytes,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        broker_max_poll_records=p.batch_max,
        stream_buffer_maxsize=max(4096, 2 * p.batch_max),
        broker_session_timeout=p.session_timeout_s,
        broker_heartbeat_interval=min(3.0, p.session_timeout_s / 6),
    )
    app.client_rack = s.kafka.client_rack
    return app


#: Longest wait for the end offsets of the consumer-lag figures.
LAG_TIMEOUT_S = 2.0
#: A source partition whose committed offset has not moved for this long while records wait behind
#: it is logged as stalled (once per stall), with Faust's fetch state of it.
STALL_WARN_S = 30.0


class ProcessorApp:
    """The Faust app of the processors, its agents, timers and metrics.

    Args:
        settings: everything (kafka, topics, schema_registry, processors).
        partitions: partitions of the source topics (the table's changelog gets as many);
            default ``settings.topics.partitions``.
        resolver: schema ids (default: the schema registry at ``schema_registry.url``).
        worker_name: shown in logs and the status file.
        status_file: JSON throughput/assignment snapshot written every ``status_interval_s``.
    """

    def __init__(
        self, settings: Settings, *, partitions: int | None = None,
        resolver: SchemaIdResolver | None = None, worker_name: str = "worker",
        status_file: Path | None = None,
    ) -> None:
        self.settings = settings
        p = settings.processors
        self.partitions = partitions or settings.topics.partitions
        self.resolver = resolver or ConfluentSchemaResolver(settings.schema_registry.url)
        self.codec = DerivedCodec(self.resolver)
        self.metrics = Throughput(worker_name)
        self.status_file = status_file
        self.pool: EncoderPool | None = None
        self.app = self._faust_app()
        self.time_series_topic = topic_for(DataType.TIME_SERIES, settings)
        self.images_topic = topic_for(DataType.IMAGES, settings)
        self.source = self.app.topic(self.time_series_topic, key_type=bytes, value_type=bytes,
                                     key_serializer="raw", value_serializer="raw")
        self.frames_source = self.app.topic(self.images_topic, key_type=bytes, value_type=bytes,
                                            key_serializer="raw", value_serializer="raw")
        self.table = self.app.Table(TABLE_NAME, partitions=self.partitions, key_type=bytes,
                                    value_type=bytes, help="window state per robot session")
        self.outputs = Outputs(
            send=self._send, codec=self.codec, bucketed_topic=bucketed_telemetry_topic(settings),
            stats_topics={r.value: stats_topic(r, settings) for r in StatsResolution},
            frames_topic=frames_topic(settings), dlq_topic=dlq_topic(settings), app_id=p.app_id,
            max_message_bytes=settings.topics.max_message_bytes,
        )
        self.telemetry = TelemetryProcessor(
            reader=TimeSeriesReader(self.resolver), resolver=self.resolver, outputs=self.outputs,
            table=fa.TableStore(self.table), metrics=self.metrics,
            lateness_us=int(p.allowed_lateness_s * 1_000_000), idle_s=p.idle_s,
            ready=lambda: not fa.rebalancing(self.app),
            caught_up=self._caught_up(self.time_series_topic, lambda: self.telemetry.processed),
            order=self._offset_order(self.time_series_topic), bucketed=p.bucketed_output,
        )
        self.frames: FrameCompactor | None = None
        self._stalls: dict[TP, tuple[int | None, float, bool]] = {}  # committed offset, since, warned
        self._register()

    # -- set-up --

    def _faust_app(self) -> faust.App:
        return faust_app(self.settings, self.partitions)

    def warm_up(self) -> None:
        """Register the derived schemas now (blocking), so the agents never wait on HTTP."""
        for topic, record_type in self._derived_subjects():
            self.codec.schema_id(topic, record_type)

    def _derived_subjects(self) -> list[tuple[str, type[Any]]]:
        out: list[tuple[str, type[Any]]] = [(self.outputs.frames_topic, FrameBatch)]
        if self.settings.processors.bucketed_output:
            out.append((self.outputs.bucketed_topic, TelemetryBucket))
        out += [(topic, WindowStats) for topic in self.outputs.stats_topics.values()]
        return out

    async def _send(self, topic: str, key: bytes, value: bytes,
                    headers: list[tuple[str, bytes]] | None) -> Awaitable[Any]:
        """Queue a record on the producer; the result is awaited for its delivery."""
        future: Awaitable[Any] = await self.app.producer.send(topic, key, value, None, None, headers)
        return future

    def _register(self) -> None:
        p = self.settings.processors
        telemetry = self.telemetry

        async def process_telemetry(stream: Any) -> None:
            ack_event = stream.ack
            async for events in stream.noack_take(p.batch_max, within=p.batch_within_s):
                await telemetry.process([event.message for event in events], partial(_ack, events, ack_event))

        async def compact_frames(stream: Any) -> None:
            compactor = self._compactor(stream.ack)
            async for events in stream.noack_take(FRAME_BATCH_MAX, within=p.batch_within_s):
                await compactor.process(events)

        self.app.agent(self.source, name="telemetry")(process_telemetry)
        self.app.agent(self.frames_source, name="frames")(compact_frames)
        self.app.timer(1.0, name="close_idle")(self._close_idle)
        self.app.timer(p.status_interval_s, name="status")(self._status)
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def _compactor(self, ack: Any) -> FrameCompactor:
        p = self.settings.processors
        if self.pool is None:
            self.pool = EncoderPool(p.pool_workers, on_restart=lambda: self.metrics.add("pool_restarts"))
        self.frames = FrameCompactor(
            resolver=self.resolver, outputs=self.outputs, metrics=self.metrics,
            params=compaction_params(self.settings), pool=self.pool, ack=ack,
            segment_frames=p.segment_frames, segment_gap_s=p.segment_gap_s,
            lateness_us=int(p.allowed_lateness_s * 1_000_000), idle_s=p.idle_s,
            max_inflight=max(2, 2 * p.pool_workers),
            caught_up=self._caught_up(self.images_topic,
                                      lambda: self.frames.processed if self.frames else {}),
        )
        return self.frames

    def _offset_order(self, topic: str) -> OffsetOrder:
        """Offset-order guard of ``topic`` on this app's consumer (committed offsets, seeks)."""

        async def start_offset(partition: int) -> int | None:
            committed = fa.committed_offsets(self.app).get(TP(topic, partition))
            return committed if committed is not None else await log_start(partition)

        async def log_start(partition: int) -> int | None:
            tp = TP(topic, partition)
            try:
                return (await self.app.consumer.earliest_offsets(tp)).get(tp)
            except Exception:  # broker unreachable: no hole is explained by retention
                return None

        async def rewind(partition: int, offset: int) -> None:
            await self.app.consumer.seek(TP(topic, partition), offset)

        return OffsetOrder(start_offset, log_start, rewind)

    def _caught_up(self, topic: str, processed: Callable[[], dict[int, int]]) -> CaughtUp:
        """``caught_up(partitions)``: those of ``topic`` read up to their end offset (no backlog)."""

        async def caught_up(partitions: set[int]) -> set[int]:
            if not partitions:
                return set()
            tps = [TP(topic, p) for p in partitions]
            try:
                ends = await self.app.consumer.highwaters(*tps)
            except Exception:  # broker unreachable: assume a backlog, close nothing
                return set()
            done = processed()
            committed = fa.committed_offsets(self.app)  # next offset per TP
            return {tp.partition for tp in tps if ends.get(tp) is not None
                    and max(done.get(tp.partition, -1), committed.get(tp) or -1) >= ends[tp]}

        return caught_up

    async def _close_idle(self) -> None:
        await self.telemetry.close_idle()
        if self.frames is not None:  # also while rebalancing: held frames must get acked
            await self.frames.close_idle()

    async def _on_assigned(self, sender: Any, assigned: Sequence[Any], **_: Any) -> None:
        actives = fa.assigned_actives(self.app)
        self.telemetry.on_assignment({tp.partition for tp in actives if tp.topic == self.time_series_topic})
        if self.frames is not None:
            self.frames.on_assignment({tp.partition for tp in actives if tp.topic == self.images_topic})
        self.metrics.assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in actives
                                       if tp.topic in (self.time_series_topic, self.images_topic))
        log.info("processors %s: assigned %s", self.metrics.worker,
                 ", ".join(self.metrics.assigned) or "nothing")
        await self._status()

    async def _refresh_lag(self) -> None:
        """Lag per assigned source partition: end offset - the group's committed offset."""
        tps = [tp for tp in fa.assigned_actives(self.app)
               if tp.topic in (self.time_series_topic, self.images_topic)]
        if not tps:
            self.metrics.lag = {}
            return
        try:  # bounded: the status file (the health probe) must not wait on a slow broker
            ends = await asyncio.wait_for(self.app.consumer.highwaters(*tps), LAG_TIMEOUT_S)
        except Exception:  # broker unreachable: keep the last figures
            return
        committed = fa.committed_offsets(self.app)  # next offset per TP
        self.metrics.lag = {(tp.topic, tp.partition): max(0, ends[tp] - (committed.get(tp) or 0))
                            for tp in tps if ends.get(tp) is not None}
        self._watch_stalls(tps, committed, ends)

    def _watch_stalls(self, tps: Sequence[TP], committed: Any, ends: Any) -> None:
        """Warn once about a partition whose committed offset stood still ``STALL_WARN_S`` with
        records behind it (Faust has been seen to stop fetching one partition after a restart)."""
        now = asyncio.get_running_loop().time()
        still: dict[TP, tuple[int | None, float, bool]] = {}
        for tp in tps:
            if ends.get(tp) is None or ends[tp] <= (committed.get(tp) or 0):
                continue
            offset, since, warned = self._stalls.get(tp, (None, now, False))
            if offset != committed.get(tp):
                offset, since, warned = committed.get(tp), now, False
            if not warned and now - since >= STALL_WARN_S and not fa.rebalancing(self.app):
                warned = True
                log.warning("processors %s: %s:%d has not moved for %.0f s with %d record(s) behind "
                            "(committed %s, end %d; Faust: %s)", self.metrics.worker, tp.topic,
                            tp.partition, now - since, ends[tp] - (offset or 0), offset, ends[tp],
                            fa.flow_state(self.app, tp))
                self.metrics.add("stalled_partitions")
            still[tp] = (offset, since, warned)
        self._stalls = still

    async def _status(self) -> None:
        await self._refresh_lag()
        snap = self.metrics.snapshot()
        self.metrics.log_line(snap)
        if self.status_file is not None:
            await asyncio.get_running_loop().run_in_executor(None, write_status, self.status_file, snap)

    def close(self) -> None:
        """Stop the process pool (after the worker stopped)."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
