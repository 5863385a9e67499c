"""The telemetry processor the ``telemetry`` agent runs: bucketing and windows per robot session.

A plain class driven by :class:`robostream.processors.app.ProcessorApp`, which owns the Faust app,
topics, table and producer.

Order per telemetry batch (what makes restarts exact): decode -> skip duplicates (seq) -> fold
into windows (and bucket, if ``processors.bucketed_output``) -> produce the closed windows (and
buckets) and **wait for their delivery** -> write the session states as they were after the batch
to the table (memory store + changelog) -> ack. A crash before the state write replays the batch
(outputs again, identical: sinks are idempotent); after it, the state already holds the batch and
the replayed records are skipped as duplicates. The waiting part runs beside the stream, batch
after batch in order: the next batches are folded meanwhile (their states are only written after).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from robostream.processors import wire
from robostream.processors.aggregations import ClosedWindow, SessionWindows
from robostream.processors.bucketing import bucket_records
from robostream.processors.columns import TelemetryColumns, TimeSeriesReader
from robostream.processors.ordering import OffsetOrder
from robostream.processors.outputs import AckMany, CaughtUp, Message, Outputs, always_caught_up
from robostream.processors.throughput import Throughput
from robostream.schemas import WIRE_HEADER, SchemaIdResolver, ValidationError

_PARTITION = struct.Struct(">i")


class TableStore(Protocol):
    """The slice of a Faust table the telemetry agent uses (store + explicit changelog)."""

    def get(self, key: bytes) -> bytes | None: ...
    def put(self, partition: int, key: bytes, value: bytes) -> None: ...
    def list_keys(self) -> list[bytes]: ...


@dataclass
class _Session:
    """A robot session the processor holds: its windows, the source partition of its records (also
    its table entry's), and when a record of it was last folded (``time.monotonic()``)."""

    windows: SessionWindows
    partition: int
    last_active: float


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
        self.caught_up = caught_up or always_caught_up
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
        # The cache, dropped on every rebalance. A session's partition travels with its batch
        # (``process`` -> ``_fold_batch``), so a rebalance between the two still writes its state to
        # the partition of its records: a key's partition never changes.
        self.sessions: dict[bytes, _Session] = {}
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
        partition_of: dict[bytes, int] = {}  # key -> partition of its records
        partitions: dict[int, int] = {}  # partition -> next offset after this batch
        read = self.reader.read
        for message in messages:
            try:
                columns = read(message.value or b"")
            except ValidationError as exc:
                await self.outputs.dead_letter(message, exc, self.metrics)
                continue
            key = columns.key
            records = by_key.get(key)
            if records is None:
                by_key[key] = [columns]
                partition_of[key] = message.partition
            else:
                records.append(columns)
        for message in messages:  # in offset order per partition: the last one is the highest
            partitions[message.partition] = message.offset + 1
        await self.slots.acquire()
        try:
            async with self.lock:
                pending, states = await self._fold_batch(by_key, partition_of)
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
        self, by_key: dict[bytes, list[TelemetryColumns]], partition_of: dict[bytes, int]
    ) -> tuple[list[Awaitable[Any]], list[tuple[int, bytes, bytes]]]:
        """Fold each session's records; the outputs' deliveries and the states to write after."""
        pending: list[Awaitable[Any]] = []
        states = []
        now = time.monotonic()
        counts = {"telemetry_records": 0, "telemetry_points": 0, "duplicates": 0, "late_samples": 0}
        for key, records in by_key.items():
            session = self._session(key, records[0], partition_of[key], now)
            pending += await self._fold(key, session.windows, records, counts)
            session.last_active = now
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

    def _session(self, key: bytes, first: TelemetryColumns, partition: int, now: float) -> _Session:
        """The cached session of ``key`` (else the table's, else a new one), on ``partition``."""
        session = self.sessions.get(key)
        if session is None:
            stored = self.table.get(key)
            if stored is not None:
                windows = SessionWindows.load(stored[_PARTITION.size:], self.lateness_us)
            else:
                windows = SessionWindows(first.robot_id, first.session_id, self.lateness_us)
            session = self.sessions[key] = _Session(windows, partition, now)
        else:
            session.partition = partition
        return session

    def _state(self, key: bytes, session: _Session) -> tuple[int, bytes, bytes]:
        """``(partition, key, value)`` of the session's table entry as it is now."""
        return session.partition, key, _PARTITION.pack(session.partition) + session.windows.dump()

    def _save(self, key: bytes, session: _Session) -> None:
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
            idle = {k: s for k, s in self.sessions.items()
                    if s.windows.open_windows and now - s.last_active >= self.idle_s}
            # silence means idle only with no backlog: a restarted worker may not have read it yet
            caught_up = await self.caught_up({s.partition for s in idle.values()})
            if not self.ready():  # a rebalance started meanwhile
                return
            for key, session in idle.items():
                if self.sessions.get(key) is not session:  # a rebalance cleared the cache meanwhile
                    continue
                if session.partition not in caught_up:
                    session.last_active = now  # the silence starts once the backlog is read
                    continue
                silent_us = int((now - session.last_active) * 1_000_000)
                closed = session.windows.close_idle(session.windows.watermark + silent_us)
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
            windows = SessionWindows.load(stored[_PARTITION.size:], self.lateness_us)
            self.sessions[key] = _Session(windows, partition, now)

    def on_assignment(self, partitions: set[int]) -> None:
        """A rebalance: forget every cached session (the table is recovered, then re-read)."""
        self.active_partitions = set(partitions)
        self.order.reset()
        self.sessions.clear()
