"""Test doubles of the Kafka side for unit tests of the task loop (no servers).

Integration tests run the same loop against the real broker and stores; these make the
checkpoint order and the pause/resume dance visible step by step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from robostream.config import ConnectorSettings, Settings
from robostream.schemas import InMemorySchemaResolver, build_envelope, encode_record
from robostream.schemas.examples import example_payload
from robostream.sinks.base import RetriableSinkError, SinkContext, SinkRecord
from robostream.sinks.convert import Converter
from robostream.sinks.errors import ErrorHandler
from robostream.sinks.status import TaskStatus
from robostream.sinks.task import SinkTask
from robostream.topics import topic_for


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] = field(default_factory=list)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def error(self) -> None:
        return None


class FakeConsumer:
    """Partitions in memory; assignment happens on the first consume/poll."""

    def __init__(self, log: list[str], partitions: dict[tuple[str, int], list[FakeMessage]]) -> None:
        self.log = log
        self.partitions = partitions
        self.position = {tp: 0 for tp in partitions}
        self.committed_offsets: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self._on_assign: Callable[..., None] | None = None
        self._assigned = False
        self.lock = threading.Lock()

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None,
                  on_lost: Any = None) -> None:
        self._on_assign = on_assign

    def _assign_once(self) -> None:
        if not self._assigned and self._on_assign is not None:
            self._assigned = True
            self._on_assign(self, [TopicPartition(t, p) for t, p in self.partitions])

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self._assign_once()
        out: list[FakeMessage] = []
        with self.lock:
            for tp, messages in self.partitions.items():
                if tp in self.paused:
                    continue
                while self.position[tp] < len(messages) and len(out) < num_messages:
                    out.append(messages[self.position[tp]])
                    self.position[tp] += 1
        if not out:
            threading.Event().wait(min(timeout, 0.01) if timeout > 0 else 0)
        return out

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        """One message of a partition that is not paused, like librdkafka's poll()."""
        got = self.consume(1, timeout)
        return got[0] if got else None

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.log.append("pause")
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.log.append("resume")
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.log.append("commit:" + ",".join(f"{tp.partition}@{tp.offset}" for tp in offsets))
        for tp in offsets:
            self.committed_offsets[(tp.topic, tp.partition)] = tp.offset

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.committed_offsets.get(
            (tp.topic, tp.partition), -1001)) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = -1,
                              cached: bool = False) -> tuple[int, int]:
        return 0, len(self.partitions[(tp.topic, tp.partition)])

    def close(self) -> None:
        self.log.append("close")


class ListSink:
    """A sink that keeps what it is given; ``fail_writes`` makes the next writes retriable errors."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.landed: list[SinkRecord] = []
        self.fail_writes = 0
        self.pings = 0
        self.context: SinkContext | None = None

    def open(self, context: SinkContext) -> None:
        self.context = context

    def write(self, batch: Sequence[SinkRecord]) -> None:
        if self.fail_writes > 0:
            self.fail_writes -= 1
            self.log.append("write-failed")
            raise RetriableSinkError("store down")
        self.log.append(f"write:{len(batch)}")
        self.landed.extend(batch)

    def flush(self) -> None:
        self.log.append("flush")

    def ping(self) -> None:
        self.pings += 1

    def close(self) -> None:
        self.log.append("sink-close")


class FakeProducer:
    """Captures DLQ copies."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                headers: Any = None, on_delivery: Any = None) -> None:
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": dict(headers or [])})

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        self.log.append("dlq-flush")
        return 0


def time_series_messages(settings: Settings, resolver: InMemorySchemaResolver, count: int,
                         partition: int = 0, session: str = "s1") -> list[FakeMessage]:
    """``count`` realistic time_series records (Confluent wire format) on one partition."""
    topic = topic_for("time_series", settings)
    out = []
    for seq in range(count):
        envelope = build_envelope("time_series", example_payload("time_series"),
                                  robot_id="robot_001", session_id=session, seq=seq,
                                  timestamp=1_700_000_000 + seq / 10)
        record = encode_record(envelope, resolver, topic_prefix=settings.topics.prefix)
        out.append(FakeMessage(topic, partition, seq, record.key, record.value, list(record.headers)))
    return out


@dataclass
class Harness:
    task: SinkTask
    consumer: FakeConsumer
    sink: ListSink
    producer: FakeProducer
    log: list[str]
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.task.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.task.stop()
        assert self.thread is not None
        self.thread.join(10)
        assert not self.thread.is_alive()


def harness(settings: Settings, messages: list[FakeMessage], **connector: Any) -> Harness:
    """A task over ``messages`` with a :class:`ListSink` and a DLQ-capturing producer."""
    log: list[str] = []
    config = ConnectorSettings(**{"name": "unit", "kind": "mongo", "topics": ["time_series"],
                                  "flush_interval_ms": 20, "errors_tolerance": "all",
                                  "errors_retry_delay_max_ms": 20, **connector})
    partitions: dict[tuple[str, int], list[FakeMessage]] = {}
    for msg in messages:
        partitions.setdefault((msg.topic(), msg.partition()), []).append(msg)
    consumer = FakeConsumer(log, partitions)
    sink = ListSink(log)
    producer = FakeProducer(log)
    resolver = RESOLVER
    task = SinkTask(config, settings, 0, [topic_for("time_series", settings)], sink,
                    Converter(settings, resolver),
                    ErrorHandler(config, settings, 0, f"{settings.topics.prefix}.dlq",
                                 producer=producer),  # type: ignore[arg-type]
                    TaskStatus(0, "test:0"), consumer_factory=lambda _cfg: consumer)  # type: ignore[arg-type,return-value]
    return Harness(task, consumer, sink, producer, log)


#: One resolver shared by the encoders and the task's converter (as one registry would be).
RESOLVER = InMemorySchemaResolver()
