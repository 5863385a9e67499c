"""errors.tolerance and the dead letter queue, in Kafka Connect's terms.

* ``errors_tolerance: none`` -- a poison record fails the task (state FAILED, trace in the
  status); nothing after it is written or committed.
* ``errors_tolerance: all`` -- the record is logged, copied to the DLQ topic
  (``errors.deadletterqueue.topic.name``) with its original key, value and headers plus
  Kafka Connect's context headers (``errors.deadletterqueue.context.headers.enable``), and the
  task goes on. The DLQ producer is flushed before the batch's offsets are committed, so a
  record is never both uncommitted-lost and missing from the DLQ.
"""

from __future__ import annotations

import logging
import traceback
from enum import StrEnum
from typing import Any

from confluent_kafka import Producer

from robostream.config import ConnectorSettings, Settings
from robostream.errors import RobostreamError
from robostream.sinks.base import RetriableSinkError, SinkRecord

log = logging.getLogger(__name__)

HEADER_PREFIX = "__connect.errors."
MAX_STACKTRACE_BYTES = 8 * 1024


class Stage(StrEnum):
    """Where the record failed (``__connect.errors.stage``), Kafka Connect's names."""

    VALUE_CONVERTER = "VALUE_CONVERTER"
    TASK_PUT = "TASK_PUT"


class TaskFailedError(RobostreamError):
    """errors.tolerance=none met a poison record: the task stops (state FAILED)."""


def root_cause(exc: BaseException) -> BaseException:
    """The exception a wrapper (``PoisonRecordError`` ``from`` the real one) stands for."""
    return exc.__cause__ if exc.__cause__ is not None else exc


def _qualified_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def context_headers(
    record: SinkRecord, exc: BaseException, *, connector: str, task_id: int, stage: Stage,
    executing_class: str,
) -> list[tuple[str, bytes]]:
    """Kafka Connect's DLQ context headers for ``record`` failing with ``exc``."""
    cause = root_cause(exc)
    trace = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    values: list[tuple[str, str]] = [
        ("topic", record.topic),
        ("partition", str(record.partition)),
        ("offset", str(record.offset)),
        ("connector.name", connector),
        ("task.id", str(task_id)),
        ("stage", stage.value),
        ("class.name", executing_class),
        ("exception.class.name", _qualified_name(cause)),
        ("exception.message", str(cause)),
        ("exception.stacktrace", trace[-MAX_STACKTRACE_BYTES:]),
    ]
    return [(HEADER_PREFIX + name, value.encode("utf-8", "replace")) for name, value in values]


def dlq_producer(settings: Settings, connector: str) -> Producer:
    """An idempotent, acks=all producer for DLQ copies."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap,
        "client.id": f"{settings.kafka.client_id}-connect-{connector}-dlq",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": settings.kafka.compression,
        "message.max.bytes": settings.topics.max_message_bytes + 64 * 1024,
        "logger": logging.getLogger("robostream.sinks.librdkafka"),
    }
    return Producer(config)


class ErrorHandler:
    """Applies errors.tolerance to poison records of one task and feeds its DLQ.

    Args:
        connector: the connector's settings (tolerance, DLQ topic, context headers).
        dlq_topic: the resolved DLQ topic name, or ``None`` (log only).
        producer: a producer for the DLQ (made on first use when ``None``).
    """

    def __init__(
        self, connector: ConnectorSettings, settings: Settings, task_id: int,
        dlq_topic: str | None, *, executing_class: str = "robostream.sinks",
        producer: Producer | None = None,
    ) -> None:
        self.connector = connector
        self.settings = settings
        self.task_id = task_id
        self.dlq_topic = dlq_topic
        self.executing_class = executing_class
        self._producer = producer
        self._errors: list[str] = []
        self.reported = 0
        #: Records handed to the DLQ producer (``robostream_sink_dlq_records_total``).
        self.dlq_records = 0

    def handle(self, record: SinkRecord, exc: BaseException, stage: Stage) -> None:
        """Fail the task (tolerance none) or log and copy ``record`` to the DLQ (all)."""
        cause = root_cause(exc)
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        if self.connector.errors_tolerance == "none":
            raise TaskFailedError(
                f"{stage.value} failed for {where}: {type(cause).__name__}: {cause}"
            ) from cause
        log.warning("connector %s task %d: poison record %s skipped (%s: %s)",
                    self.connector.name, self.task_id, where, type(cause).__name__, cause)
        self.reported += 1
        self._send(record, exc, stage)

    def _send(self, record: SinkRecord, exc: BaseException, stage: Stage) -> None:
        if self.dlq_topic is None:
            return
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        if self.connector.dlq_context_headers:
            headers += context_headers(record, exc, connector=self.connector.name,
                                       task_id=self.task_id, stage=stage,
                                       executing_class=self.executing_class)
        producer = self._ensure_producer()
        producer.produce(self.dlq_topic, value=record.value, key=record.key, headers=headers,
                         on_delivery=self._on_delivery)
        producer.poll(0)
        self.dlq_records += 1

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._producer = dlq_producer(self.settings, self.connector.name)
        return self._producer

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every DLQ copy is acknowledged; raise ``RetriableSinkError`` if one was not."""
        if self._producer is None:
            return
        remaining = self._producer.flush(timeout)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise RetriableSinkError(
                f"DLQ {self.dlq_topic}: {remaining} record(s) undelivered, errors: {errors[:3]}"
            )

    def close(self) -> None:
        """Flush what is pending (best effort)."""
        if self._producer is not None:
            self._producer.flush(10)
