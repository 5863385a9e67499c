"""What both processors share: the consumed message they read, and the outputs they write to."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from robostream.processors.records import DerivedCodec, TelemetryBucket, WindowStats
from robostream.processors.throughput import Throughput

log = logging.getLogger("robostream.processors")

DLQ_PREFIX = "__connect.errors."


class Message(Protocol):
    """What the processors need of a consumed Kafka message (Faust's ``Message``)."""

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


async def always_caught_up(partitions: set[int]) -> set[int]:
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

