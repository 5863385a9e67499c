"""Read one recorded session back from its data type topics, in recorded-time order.

The Kafka record timestamp of a robot record is its **ingest time** (the gateway produces without
an explicit timestamp, so Kafka keeps the producer's clock at send time), while the robot's own
time is the envelope ``timestamp``. A time bound is therefore found in two steps:

1. a coarse seek per partition with ``offsets_for_times`` (``list_offsets`` ``for_timestamp``)
   at ``from - slack`` and ``to + slack`` (records reach Kafka after they were made, at most
   ``slack`` later, and a robot clock may run ``slack`` ahead);
2. an exact filter on the envelope timestamps (``from <= timestamp < to``).

Offset bounds are used as they are (``start <= offset < end`` in every partition read).

Every partition of every chosen data type topic is read (a session's records share one partition
per topic, but which one depends on the producer's partitioner), records of other sessions are
skipped by key, and the per-partition streams are merged by envelope timestamp.
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from robostream.config import Settings, validate_id
from robostream.errors import RobostreamError
from robostream.replay.bounds import Bound
from robostream.schemas import DataType, Envelope, SchemaIdResolver, ValidationError, decode_record
from robostream.schemas.envelope import record_key
from robostream.topics.catalog import topic_for

log = logging.getLogger(__name__)
_librdkafka_log = logging.getLogger("robostream.replay.librdkafka")
_librdkafka_log.addHandler(logging.NullHandler())

#: How much later than its envelope timestamp a record may reach Kafka (and how far a robot
#: clock may run ahead) for a time bound to still find it.
DEFAULT_SLACK = timedelta(minutes=5)
#: Records buffered per partition before it is paused (bounds memory while merging).
MAX_BUFFERED = 2000
#: Give up when Kafka delivers nothing for this long while records are still expected.
STALL_TIMEOUT_S = 60.0
KAFKA_TIMEOUT_S = 15.0

ProgressCallback = Callable[[int], None]


class ReplayError(RobostreamError):
    """Replay, export or offsets cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Which records to read: one robot session, some data types, between two bounds."""

    robot_id: str
    session_id: str
    types: tuple[DataType, ...] = tuple(DataType)
    start: Bound | None = None
    end: Bound | None = None
    slack: timedelta = DEFAULT_SLACK

    def __post_init__(self) -> None:
        validate_id(self.robot_id, "robot_id")
        validate_id(self.session_id, "session_id")
        if not self.types:
            raise ValueError("choose at least one data type")

    @property
    def key(self) -> bytes:
        """The Kafka key of the session's records."""
        return record_key(self.robot_id, self.session_id)

    def in_window(self, timestamp_us: int) -> bool:
        """True when a record's envelope timestamp lies within the time bounds (if any)."""
        low = self.start.time_us if self.start is not None else None
        high = self.end.time_us if self.end is not None else None
        return (low is None or timestamp_us >= low) and (high is None or timestamp_us < high)


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``start <= offset < end`` of one partition to read."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A decoded record of the session and where it was read."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    timestamp_ms: int  # the Kafka record timestamp (ingest time)
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


# --- offsets ------------------------------------------------------------------------------------


def reader_admin(settings: Settings) -> AdminClient:
    """An AdminClient for offset look-ups."""
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka.bootstrap,
                              "client.id": f"{settings.kafka.client_id}-replay",
                              "logger": _librdkafka_log}
    return AdminClient(config)


def describe_kafka_error(exc: BaseException) -> str:
    """``NAME: sentence`` of a KafkaException, else the exception text."""
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"
    return str(exc) or type(exc).__name__


def partitions_of(admin: AdminClient, topics: Sequence[str], bootstrap: str) -> list[TopicPartition]:
    """Every partition of ``topics``; raises :class:`ReplayError` naming the missing ones."""
    try:
        metadata = admin.list_topics(timeout=KAFKA_TIMEOUT_S)
    except KafkaException as exc:
        raise ReplayError(f"cannot reach Kafka at {bootstrap}: {describe_kafka_error(exc)}; is the "
                          "broker running? (`robostream stack up`)") from None
    missing = [t for t in topics if t not in metadata.topics]
    if missing:
        raise ReplayError(f"topic(s) not on the cluster: {', '.join(missing)} "
                          "(create the catalogue with `robostream topics create`)")
    return [TopicPartition(t, p) for t in topics for p in sorted(metadata.topics[t].partitions)]


def list_offsets(
    admin: AdminClient, partitions: Sequence[TopicPartition], spec: OffsetSpec,
) -> dict[tuple[str, int], int]:
    """``{(topic, partition): offset}`` for one offset spec (earliest, latest, a timestamp);
    ``-1`` where no record has a timestamp at or after the one asked."""
    if not partitions:
        return {}
    futures = admin.list_offsets({TopicPartition(tp.topic, tp.partition): spec for tp in partitions},
                                 request_timeout=KAFKA_TIMEOUT_S)
    offsets = {}
    for tp, future in futures.items():
        try:
            offsets[(tp.topic, tp.partition)] = int(future.result().offset)
        except KafkaException as exc:
            raise ReplayError(f"cannot list offsets of {tp.topic}[{tp.partition}]: "
                              f"{describe_kafka_error(exc)}") from None
    return offsets


def _time_offsets(admin: AdminClient, partitions: Sequence[TopicPartition], time_ms: int,
                  fallback: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """The first offset whose Kafka timestamp is >= ``time_ms``; ``fallback`` (the log end) when
    there is none (as ``kafka-consumer-groups --to-datetime`` does)."""
    found = list_offsets(admin, partitions, OffsetSpec.for_timestamp(max(0, time_ms)))
    return {tp: (off if off >= 0 else fallback[tp]) for tp, off in found.items()}


def _bound_offsets(admin: AdminClient, partitions: Sequence[TopicPartition], bound: Bound | None,
                   shift: timedelta, default: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    if bound is None:
        return default
    if bound.time is None:
        return dict.fromkeys(default, int(bound.offset or 0))
    time_ms = int((bound.time + shift).timestamp() * 1000)
    latest = list_offsets(admin, partitions, OffsetSpec.latest())
    return _time_offsets(admin, partitions, time_ms, latest)


def plan_ranges(
    settings: Settings, query: SessionQuery, admin: AdminClient | None = None,
) -> list[PartitionRange]:
    """The offsets to read in every partition of the query's data type topics."""
    admin = admin or reader_admin(settings)
    topics = [topic_for(dt, settings) for dt in query.types]
    partitions = partitions_of(admin, topics, settings.kafka.bootstrap)
    low = list_offsets(admin, partitions, OffsetSpec.earliest())
    high = list_offsets(admin, partitions, OffsetSpec.latest())
    starts = _bound_offsets(admin, partitions, query.start, -query.slack, low)
    ends = _bound_offsets(admin, partitions, query.end, query.slack, high)
    ranges = []
    for tp in partitions:
        key = (tp.topic, tp.partition)
        start = min(max(starts[key], low[key]), high[key])
        end = max(min(ends[key], high[key]), start)
        ranges.append(PartitionRange(tp.topic, tp.partition, start, end))
    return ranges


# --- reading ------------------------------------------------------------------------------------


@dataclass
class _Lane:
    """One partition being read: its range, what was read so far, what waits to be merged."""

    index: int
    range: PartitionRange
    next_offset: int
    done: bool = False
    paused: bool = False
    buffer: deque[SessionRecord] = field(default_factory=deque)

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.range.topic, self.range.partition, self.next_offset)

    def head(self) -> tuple[int, int, int]:
        record = self.buffer[0]
        return (record.envelope.timestamp_us, self.index, record.offset)


def _header_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def _message_headers(message: Message) -> list[tuple[str, bytes]]:
    """A consumed record's headers as ``(name, bytes)`` pairs, in order."""
    headers = message.headers()
    pairs = headers.items() if isinstance(headers, dict) else headers or []
    return [(name, _header_bytes(value)) for name, value in pairs]


def reader_consumer(settings: Settings) -> Consumer:
    """A consumer that only reads assigned offsets: it commits nothing and joins no group."""
    return Consumer(reader_config(settings))


def reader_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings of :func:`reader_consumer`."""
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        "client.id": f"{settings.kafka.client_id}-replay",
        "group.id": f"{settings.kafka.client_id}-replay-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "queued.max.messages.kbytes": 32768,
        "logger": _librdkafka_log,
        **settings.kafka.rack_config(),
    }


class SessionReader:
    """Iterates one session's records across its data type topics, merged by envelope timestamp.

        with SessionReader(settings, query, resolver) as reader:
            for record in reader:
                ...

    ``on_progress(n)`` is called with the number of offsets read (records of every session) so
    that a progress bar can run against :attr:`total_offsets`.
    """

    def __init__(self, settings: Settings, query: SessionQuery, resolver: SchemaIdResolver, *,
                 on_progress: ProgressCallback | None = None,
                 ranges: list[PartitionRange] | None = None) -> None:
        self.settings = settings
        self.query = query
        self.resolver = resolver
        self.ranges = ranges if ranges is not None else plan_ranges(settings, query)
        self.on_progress = on_progress
        self.skipped = 0  # records of the session that did not decode
        self.read = 0  # records of the session yielded
        self._consumer: Consumer | None = None

    @property
    def total_offsets(self) -> int:
        """How many offsets the read covers (all sessions): the progress bar's total."""
        return sum(r.size for r in self.ranges)

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __iter__(self) -> Iterator[SessionRecord]:
        lanes = [_Lane(i, r, r.start) for i, r in enumerate(r for r in self.ranges if r.size > 0)]
        if not lanes:
            return
        self._consumer = consumer = reader_consumer(self.settings)
        consumer.assign([lane.tp for lane in lanes])
        by_tp = {(lane.range.topic, lane.range.partition): lane for lane in lanes}
        heap: list[tuple[int, int, int]] = []
        starving = set(range(len(lanes)))
        while True:
            if starving:
                self._fill(consumer, by_tp, lanes, starving, heap)
                continue
            if not heap:
                return
            _, index, _ = heapq.heappop(heap)
            lane = lanes[index]
            record = lane.buffer.popleft()
            if lane.buffer:
                heapq.heappush(heap, lane.head())
            elif not lane.done:
                starving.add(index)
            if lane.paused and len(lane.buffer) < MAX_BUFFERED // 2:
                consumer.resume([lane.tp])
                lane.paused = False
            self.read += 1
            yield record

    def _fill(self, consumer: Consumer, by_tp: dict[tuple[str, int], _Lane], lanes: list[_Lane],
              starving: set[int], heap: list[tuple[int, int, int]]) -> None:
        """Consume until every starving lane has a record buffered or is done."""
        deadline = time.monotonic() + STALL_TIMEOUT_S
        while starving:
            messages = consumer.consume(num_messages=1000, timeout=0.5)
            if messages:
                deadline = time.monotonic() + STALL_TIMEOUT_S
            for message in messages:
                lane = by_tp.get((message.topic() or "", message.partition() or 0))
                if lane is None or lane.done:
                    continue
                had = bool(lane.buffer)
                self._take(consumer, lane, message)
                if not had and lane.buffer:
                    heapq.heappush(heap, lane.head())
                if lane.buffer or lane.done:
                    starving.discard(lane.index)
            if not messages:
                self._finish_caught_up(consumer, [lanes[i] for i in starving], starving)
                if time.monotonic() > deadline:
                    waiting = ", ".join(f"{lanes[i].range.topic}[{lanes[i].range.partition}]"
                                        for i in sorted(starving))
                    raise ReplayError(f"Kafka delivered nothing for {STALL_TIMEOUT_S:g}s while "
                                      f"reading {waiting}")

    def _take(self, consumer: Consumer, lane: _Lane, message: Message) -> None:
        """Account one message of ``lane``: buffer it when it is the session's, within bounds."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._finish(consumer, lane)
                return
            raise ReplayError(f"reading {lane.range.topic}[{lane.range.partition}]: {error.str()}")
        offset = message.offset() or 0
        if offset < lane.next_offset:
            return  # delivered again after a pause/resume
        if offset >= lane.range.end:
            self._finish(consumer, lane)
            return
        if self.on_progress is not None:
            self.on_progress(offset + 1 - lane.next_offset)
        lane.next_offset = offset + 1
        record = self._decode(message, lane, offset)
        if record is not None:
            lane.buffer.append(record)
            if len(lane.buffer) >= MAX_BUFFERED and not lane.paused:
                consumer.pause([lane.tp])
                lane.paused = True
        if lane.next_offset >= lane.range.end:
            self._finish(consumer, lane)

    def _decode(self, message: Message, lane: _Lane, offset: int) -> SessionRecord | None:
        key = message.key()
        if key != self.query.key:
            return None
        value = message.value() or b""
        headers = _message_headers(message)
        try:
            envelope = decode_record(value, self.resolver, key=key, headers=headers)
        except ValidationError as exc:
            self.skipped += 1
            log.warning("skipping %s[%d]@%d: %s", lane.range.topic, lane.range.partition, offset, exc)
            return None
        if envelope.data_type not in self.query.types or not self.query.in_window(envelope.timestamp_us):
            return None
        _, timestamp_ms = message.timestamp()
        return SessionRecord(envelope, lane.range.topic, lane.range.partition, offset, timestamp_ms,
                             key, value, headers)

    def _finish(self, consumer: Consumer, lane: _Lane) -> None:
        if self.on_progress is not None and lane.next_offset < lane.range.end:
            self.on_progress(lane.range.end - lane.next_offset)
        lane.next_offset = max(lane.next_offset, lane.range.end)
        if not lane.done:
            lane.done = True
            consumer.pause([lane.tp])

    def _finish_caught_up(self, consumer: Consumer, waiting: list[_Lane], starving: set[int]) -> None:
        """Lanes whose fetch position passed their end without a message (offset gaps)."""
        if not waiting:
            return
        positions = consumer.position([lane.tp for lane in waiting])
        for lane, tp in zip(waiting, positions, strict=True):
            if tp.offset is not None and tp.offset >= lane.range.end:
                self._finish(consumer, lane)
                starving.discard(lane.index)
