"""One sink task: poll -> batch -> convert -> write -> flush -> commit, in a thread.

The checkpoint order is quix-streams' (``checkpointing/checkpoint.py``): flush the sink, flush
the producer (here: the DLQ copies), then commit the offsets. An offset is therefore committed
only once every record before it is durable in the store or on the DLQ: at-least-once, made
effectively-once by the sinks' idempotent writes. Commits happen beside the data path, as Kafka
Connect's ``offset.flush.interval.ms`` does: the written offsets are committed asynchronously at
most every ``offset_flush_interval_ms`` (and synchronously when partitions are revoked and when
the task stops), so the next record never waits for a broker round trip.

When the store is unreachable (:class:`RetriableSinkError`) the task pauses every assigned
partition, keeps the batch, waits (exponential backoff, capped at
``errors_retry_delay_max_ms``, polling the paused consumer so it stays in its group), probes
the store with ``sink.ping()`` and writes the same batch again; then it commits and resumes.
Keeping the batch (as Kafka Connect's ``WorkerSinkTask`` does on a ``RetriableException``)
instead of seeking back to the last commit as quix does has the same effect -- nothing is lost,
nothing is skipped -- without refetching. A crash while paused loses nothing either: nothing
past the last commit was committed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition

from robostream.config import ConnectorSettings, Settings
from robostream.sinks.base import PoisonRecordError, RetriableSinkError, Sink, SinkContext, SinkRecord
from robostream.sinks.convert import Converter
from robostream.sinks.errors import ErrorHandler, Stage, TaskFailedError
from robostream.sinks.status import PartitionLag, PauseReason, State, TaskStatus
from robostream_sdk.backoff import Backoff

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.25
#: The random share of each outage retry delay (tasks of a store that went down together spread out).
BACKOFF_JITTER = 0.2
#: A batch is written when it holds ``batch_size`` records or this many bytes (big media).
MAX_BATCH_BYTES = 64 * 1024 * 1024
POLL_SLICE_S = 0.25
LAG_REFRESH_S = 2.0
COMMIT_TIMEOUT_S = 30.0

TP = tuple[str, int]


def group_id(connector: str) -> str:
    """The consumer group of a connector's tasks: ``connect-<name>``, as in Kafka Connect."""
    return f"connect-{connector}"


def consumer_config(settings: Settings, connector: ConnectorSettings, task_id: int) -> dict[str, Any]:
    """librdkafka settings of a task's consumer: manual commits, earliest, short session."""
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        "group.id": group_id(connector.name),
        "client.id": f"{settings.kafka.client_id}-connect-{connector.name}-{task_id}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 2000,
        "max.poll.interval.ms": 300_000,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": max(1024 * 1024, settings.topics.max_message_bytes),
        "topic.metadata.refresh.interval.ms": 30_000,
        "logger": logging.getLogger("robostream.sinks.librdkafka"),
        **settings.kafka.rack_config(),
    }


def merge_offsets(into: dict[TP, int], offsets: Sequence[TopicPartition]) -> None:
    """Keep the highest offset per partition of ``into`` and ``offsets``."""
    for tp in offsets:
        key = (tp.topic, tp.partition)
        if tp.offset > into.get(key, -1):
            into[key] = tp.offset


def backoff_delay(attempt: int, cap_s: float, hint_s: float | None = None) -> float:
    """The wait before outage retry ``attempt`` (1: the first): 0.25 s, 0.5 s, 1 s ... capped at
    ``cap_s``, each between 80 % and all of its step (:data:`BACKOFF_JITTER`, :class:`Backoff`);
    the store's ``hint_s`` is honoured up to ``cap_s``."""
    policy = Backoff(min(INITIAL_BACKOFF_S, cap_s), cap_s, jitter=BACKOFF_JITTER)
    return min(cap_s, policy.delay(attempt - 1, hint_s))


def commit_offsets(batch: Sequence[SinkRecord]) -> list[TopicPartition]:
    """The offsets to commit after ``batch``: per partition, the highest offset + 1."""
    highest: dict[TP, int] = {}
    for record in batch:
        tp = (record.topic, record.partition)
        if record.offset >= highest.get(tp, -1):
            highest[tp] = record.offset
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(highest.items())]


def to_sink_record(msg: Message) -> SinkRecord:
    """A consumed message as a :class:`SinkRecord` (not converted yet)."""
    raw: Any = msg.headers() or []  # a consumer always gets a list of (name, value)
    headers = [(str(k), v if isinstance(v, bytes) else str(v or "").encode()) for k, v in raw]
    ts = msg.timestamp()[1]
    return SinkRecord(topic=msg.topic() or "", partition=msg.partition() or 0,
                      offset=msg.offset() or 0, key=msg.key(), value=msg.value(),
                      headers=headers, timestamp_ms=ts if ts > 0 else None)


class SinkTask:
    """A task of a sink connector: one consumer in group ``connect-<name>`` and one sink.

    Run it with :meth:`run` (blocks; meant for a thread), stop it with :meth:`stop`.
    """

    def __init__(
        self,
        connector: ConnectorSettings,
        settings: Settings,
        task_id: int,
        subscription: list[str],
        sink: Sink,
        converter: Converter,
        errors: ErrorHandler,
        status: TaskStatus,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    ) -> None:
        self.connector = connector
        self.settings = settings
        self.task_id = task_id
        self.subscription = subscription
        self.sink = sink
        self.converter = converter
        self.errors = errors
        self.status = status
        self._consumer_factory = consumer_factory
        self._consumer: Consumer | None = None
        self._stop = threading.Event()
        self._user_paused = threading.Event()
        self._paused_applied = False
        self._in_outage = False
        self._buffer: list[SinkRecord] = []
        self._buffer_bytes = 0
        self._deadline: float | None = None
        self._assigned: list[TopicPartition] = []
        self._committed: dict[TP, int] = {}
        self._to_commit: dict[TP, int] = {}  # written and flushed, not committed yet
        self._committed_at = -math.inf  # the first written offsets are committed at once
        self._lag_at = 0.0

    # -- control (any thread) ------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the task to finish its batch, commit and exit."""
        self._stop.set()

    def pause(self) -> None:
        """PUT /connectors/{name}/pause: stop consuming (the batch in hand is written first)."""
        self._user_paused.set()

    def resume(self) -> None:
        """PUT /connectors/{name}/resume."""
        self._user_paused.clear()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Consume and land records until :meth:`stop`; a fatal error leaves the task FAILED."""
        try:
            self._open()
            self.status.set(state=State.RUNNING, trace=None)
            while not self._stop.is_set():
                self._step()
            self._checkpoint_with_retry()
            self._commit(asynchronous=False)
            self.status.set(state=State.STOPPED)
        except TaskFailedError as exc:
            self._fail(exc)
        except Exception as exc:
            log.exception("connector %s task %d crashed", self.connector.name, self.task_id)
            self._fail(exc)
        finally:
            self._close()

    def _step(self) -> None:
        if self._apply_user_pause():
            self._poll_idle(POLL_SLICE_S)
            return
        self._fill_buffer()
        if self._buffer and self._batch_due():
            self._checkpoint_with_retry()
        if self._to_commit and self._commit_due():
            self._commit(asynchronous=True)
        self._refresh_lag()

    def _open(self) -> None:
        context = SinkContext(self.connector.name, self.task_id, self.settings, self._report)
        self.sink.open(context)
        config = consumer_config(self.settings, self.connector, self.task_id)
        consumer = self._consumer_factory({**config, "on_commit": self._on_commit})
        consumer.subscribe(self.subscription, on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_revoke)
        self._consumer = consumer
        log.info("connector %s task %d started on %s", self.connector.name, self.task_id,
                 ", ".join(self.subscription))

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing consumer: %s", exc)
            self._consumer = None
        try:
            self.errors.close()
            self.sink.close()
        except Exception as exc:  # closing must not hide the task's outcome
            log.warning("closing sink of %s task %d: %s", self.connector.name, self.task_id, exc)

    def _fail(self, exc: BaseException) -> None:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self._buffer = []  # uncommitted: redelivered when the task is restarted
        self._buffer_bytes = 0
        self._deadline = None
        log.error("connector %s task %d FAILED: %s", self.connector.name, self.task_id, exc)
        self.status.set(state=State.FAILED, trace=trace, paused_reason=None)

    # -- polling -------------------------------------------------------------------------------

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("task is not running")
        return self._consumer

    def _fill_buffer(self) -> None:
        room = self.connector.batch_size - len(self._buffer)
        if room <= 0:
            return
        if not self._buffer:
            # poll() returns with the first record; consume(n) would wait the whole slice for n
            # of them, and that wait is live latency when robots are few (the Redis connector).
            first = self.consumer.poll(POLL_SLICE_S)
            if first is None or not self._take(first):
                return
            room -= 1
        timeout = POLL_SLICE_S
        if self._deadline is not None:
            timeout = min(timeout, max(0.0, self._deadline - time.monotonic()))
        if room > 0:
            for msg in self.consumer.consume(num_messages=min(room, 10_000), timeout=timeout):
                self._take(msg)

    def _take(self, msg: Message) -> bool:
        """Buffer one consumed record (False: it was an error event); starts the flush clock."""
        error = msg.error()
        if error is not None:
            self._on_consume_error(error)
            return False
        record = to_sink_record(msg)
        self._buffer.append(record)
        self._buffer_bytes += record.size
        if self._deadline is None:
            self._deadline = time.monotonic() + self.connector.flush_interval_ms / 1000
        return True

    def _on_consume_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaException(error)
        log.warning("connector %s task %d consume error: %s", self.connector.name, self.task_id,
                    error.str())

    def _batch_due(self) -> bool:
        full = len(self._buffer) >= self.connector.batch_size or self._buffer_bytes >= MAX_BATCH_BYTES
        return full or (self._deadline is not None and time.monotonic() >= self._deadline)

    def _poll_idle(self, seconds: float) -> None:
        """Poll with every partition paused: serves heartbeats and rebalances, returns nothing."""
        msg = self.consumer.poll(seconds)
        if msg is not None and msg.error() is None:  # pragma: no cover - paused partitions
            log.debug("message from a paused partition dropped (will be refetched)")

    # -- pause / resume ------------------------------------------------------------------------

    def _apply_user_pause(self) -> bool:
        wanted = self._user_paused.is_set()
        if wanted and not self._paused_applied:
            self._checkpoint_with_retry()  # land and commit what we hold before pausing
            self._commit(asynchronous=False)
            self._pause_all()
            self._paused_applied = True
            self.status.set(state=State.PAUSED, paused_reason=PauseReason.USER)
        elif not wanted and self._paused_applied:
            self._resume_all()
            self._paused_applied = False
            self.status.set(state=State.RUNNING, paused_reason=None)
        return wanted

    def _pause_all(self) -> None:
        if self._assigned:
            self.consumer.pause(self._assigned)

    def _resume_all(self) -> None:
        if self._assigned:
            self.consumer.resume(self._assigned)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.assign(partitions)
        self._assigned = list(partitions)
        if self._in_outage or self._paused_applied:
            consumer.pause(partitions)
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException:
            committed = []
        self._committed = {(tp.topic, tp.partition): tp.offset for tp in committed
                           if tp.offset != OFFSET_INVALID and tp.offset >= 0}
        self._lag_at = 0.0
        log.info("connector %s task %d assigned %d partition(s)", self.connector.name,
                 self.task_id, len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        if self._buffer and not self._in_outage:
            try:
                self._checkpoint()
            except Exception as exc:
                log.warning("flush on revoke failed (%s); the records will be redelivered", exc)
        if self._to_commit:
            self._commit(asynchronous=False)  # the next owner starts after what we wrote
        # Whatever was not committed is redelivered to the partitions' next owner.
        self._buffer = [r for r in self._buffer if (r.topic, r.partition) not in gone]
        self._buffer_bytes = sum(r.size for r in self._buffer)
        if not self._buffer:
            self._deadline = None
        self._assigned = [tp for tp in self._assigned if (tp.topic, tp.partition) not in gone]
        for tp in gone:
            self._committed.pop(tp, None)
            self._to_commit.pop(tp, None)

    # -- checkpoint ----------------------------------------------------------------------------

    def _report(self, record: SinkRecord, exc: BaseException) -> None:
        self.status.add(records_failed=1)
        self.errors.handle(record, exc, Stage.TASK_PUT)

    def _convert(self, batch: list[SinkRecord]) -> list[SinkRecord]:
        good = []
        for record in batch:
            if record.failed:
                continue
            if record.item is None:
                try:
                    self.converter.convert(record)
                except PoisonRecordError as exc:
                    self.status.add(records_failed=1)
                    self.errors.handle(record, exc, Stage.VALUE_CONVERTER)
                    record.failed = True
                    continue
            good.append(record)
        return good

    def _checkpoint(self) -> None:
        """Write the buffer, flush the sink and the DLQ, then commit. Raises on store trouble."""
        if not self._buffer:
            return
        batch = self._buffer
        good = self._convert(batch)
        if good:
            self.sink.write(good)
        self.sink.flush()
        self.errors.flush()
        merge_offsets(self._to_commit, commit_offsets(batch))
        self.status.add(records_written=len(good), batches=1)
        self._buffer = []
        self._buffer_bytes = 0
        self._deadline = None

    def _commit_due(self) -> bool:
        interval = self.connector.offset_flush_interval_ms / 1000
        return time.monotonic() - self._committed_at >= interval

    def _commit(self, *, asynchronous: bool) -> None:
        """Commit the offsets written so far (async: beside the path; sync: revoke and stop)."""
        if not self._to_commit or self._consumer is None:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(self._to_commit.items())]
        self._to_commit = {}
        self._committed_at = time.monotonic()
        try:
            if asynchronous:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The data is durable; the records come again and are written idempotently.
            log.warning("connector %s task %d: offset commit failed (%s); records will be "
                        "redelivered", self.connector.name, self.task_id, exc)
            merge_offsets(self._to_commit, offsets)
            return
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset
        self.status.add(commits=1)
        self._refresh_lag(force=True)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's answer to a commit (called in this thread, from poll/consume)."""
        if error is None or error.code() == KafkaError._NO_OFFSET:
            return
        log.warning("connector %s task %d: offset commit failed (%s); it is tried again with the "
                    "next commit", self.connector.name, self.task_id, error.str())
        assigned = {(tp.topic, tp.partition) for tp in self._assigned}
        # Only what no later commit covers: a commit never moves a group's offset backwards.
        again = [tp for tp in partitions if (tp.topic, tp.partition) in assigned
                 and tp.offset >= self._committed.get((tp.topic, tp.partition), -1)]
        merge_offsets(self._to_commit, again)

    def _checkpoint_with_retry(self) -> None:
        """Checkpoint; while the store is down, pause, back off and try again (no busy loop)."""
        try:
            self._checkpoint()
            return
        except RetriableSinkError as exc:
            first_error: RetriableSinkError = exc
        self._outage(first_error)

    def _outage(self, error: RetriableSinkError) -> None:
        started = time.monotonic()
        self._in_outage = True
        self._pause_all()
        cap = self.connector.errors_retry_delay_max_ms / 1000
        attempt = 1
        log.warning("connector %s task %d: store unavailable (%s); partitions paused",
                    self.connector.name, self.task_id, error)
        try:
            while True:
                delay = backoff_delay(attempt, cap, error.retry_after)
                self.status.set(state=State.PAUSED, paused_reason=PauseReason.STORE_UNAVAILABLE,
                                retry_attempt=attempt, last_error=str(error),
                                next_retry_at=time.monotonic() + delay)
                self._wait(delay)
                if self._stop.is_set():
                    self._abandon_batch(error)
                    return
                self._give_up_after(started, error)
                try:
                    self.sink.ping()
                    self._checkpoint()
                    break
                except RetriableSinkError as exc:
                    error = exc
                    attempt += 1
        finally:
            self._in_outage = False
        if not self._paused_applied:
            self._resume_all()
        log.info("connector %s task %d: store back after %.1f s (%d attempt(s)); resumed",
                 self.connector.name, self.task_id, time.monotonic() - started, attempt)
        self.status.set(state=State.PAUSED if self._paused_applied else State.RUNNING,
                        paused_reason=PauseReason.USER if self._paused_applied else None,
                        retry_attempt=0, next_retry_at=None, last_error=None)

    def _abandon_batch(self, error: RetriableSinkError) -> None:
        log.warning("connector %s task %d stopping while the store is unavailable (%s): %d "
                    "uncommitted record(s) will be redelivered", self.connector.name,
                    self.task_id, error, len(self._buffer))
        self._buffer = []
        self._buffer_bytes = 0
        self._deadline = None

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and not self._stop.is_set():
            self._poll_idle(min(POLL_SLICE_S, left))
            self._refresh_lag()

    def _give_up_after(self, started: float, error: RetriableSinkError) -> None:
        limit = self.connector.errors_retry_timeout_ms
        if limit >= 0 and (time.monotonic() - started) * 1000 > limit:
            raise TaskFailedError(
                f"store still unavailable after {limit} ms (errors_retry_timeout_ms): {error}"
            ) from error

    # -- lag -----------------------------------------------------------------------------------

    def _refresh_lag(self, force: bool = False) -> None:
        """Lag per assigned partition from cached high watermarks (no broker round trip)."""
        now = time.monotonic()
        if (not force and now - self._lag_at < LAG_REFRESH_S) or self._consumer is None:
            return
        self._lag_at = now
        lags = []
        for tp in self._assigned:
            end: int | None
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, timeout=1, cached=True)
                end = high if high >= 0 else None
            except KafkaException:
                end = None
            lags.append(PartitionLag(tp.topic, tp.partition,
                                     self._committed.get((tp.topic, tp.partition)), end))
        self.status.set(lag=lags)
