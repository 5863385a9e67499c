"""What every sink shares: the record it is given, the ``Sink`` protocol and its errors.

A sink is a small object with four calls (see quix-streams' ``BatchingSink`` and Kafka
Connect's ``SinkTask``)::

    open(context)   connect, create indexes / buckets, load scripts
    write(batch)    land a batch of converted records (may keep some I/O in flight)
    flush()         return only once everything written so far is durable
    close()         release clients

plus ``ping()``, the cheap probe the runtime calls while a store is down.

A sink raises :class:`RetriableSinkError` when its store is unreachable (the runtime pauses the
partitions, backs off and retries the same batch) and reports a record it can never write
(a poison record) through ``context.report(record, exc)`` (errors.tolerance, DLQ).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from robostream.config import Settings
from robostream.errors import RobostreamError


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A ``session_event`` datum read from the sessions topic (timestamps in µs)."""

    datum: dict[str, Any]

    @property
    def robot_id(self) -> str:
        return str(self.datum["robot_id"])

    @property
    def session_id(self) -> str:
        return str(self.datum["session_id"])


@dataclass(slots=True)
class SinkRecord:
    """A consumed Kafka record and what the converter made of it.

    ``item`` is an :class:`~robostream.schemas.Envelope` (data topics), a :class:`SessionEvent`
    (sessions topic) or a derived record of :mod:`robostream.processors` (derived topics).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int | None = None
    item: Any = None
    failed: bool = False  # already handed to errors.tolerance (not converted again on a retry)

    @property
    def size(self) -> int:
        """Bytes of key and value, as they were on the topic."""
        return len(self.key or b"") + len(self.value or b"")


class RetriableSinkError(RobostreamError):
    """The store is unreachable or overloaded: pause, back off, retry the whole batch.

    ``retry_after`` (seconds) is the sink's hint; the runtime's exponential backoff may wait
    longer.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PoisonRecordError(RobostreamError):
    """A record no retry will ever write (bad shape, unsafe id, store rejects it for good)."""


#: ``report(record, exc)``: hand a poison record to errors.tolerance (DLQ or task failure).
Reporter = Callable[[SinkRecord, BaseException], None]


@dataclass(frozen=True)
class SinkContext:
    """What a sink gets at ``open``: who it is, the settings, and the errant-record reporter."""

    connector: str
    task_id: int
    settings: Settings
    report: Reporter


@runtime_checkable
class Sink(Protocol):
    """A store a connector lands records in (MongoDB, S3, Redis)."""

    def open(self, context: SinkContext) -> None:
        """Connect and prepare the store (indexes, bucket, scripts)."""
        ...

    def write(self, batch: Sequence[SinkRecord]) -> None:
        """Land ``batch``; raise :class:`RetriableSinkError` if the store is unreachable."""
        ...

    def flush(self) -> None:
        """Return once every record written so far is durable."""
        ...

    def ping(self) -> None:
        """Raise if the store cannot be reached (probe while paused)."""
        ...

    def close(self) -> None:
        """Release clients and threads."""
        ...
