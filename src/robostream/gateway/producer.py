"""The gateway's Kafka producer: idempotent, ``acks=all``, polled from its own thread.

Delivery reports arrive on the poll thread; a :class:`DeliveryTracker` collects one batch's
reports and completes an asyncio future on the event loop once all of them are in (one loop
wake-up per batch, not per record).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, cast

from confluent_kafka import KafkaError, Producer

from robostream.config import Settings
from robostream.gctuning import shorten_gil_handoffs
from robostream.schemas import KafkaRecord
from robostream.topics.catalog import DLQ_HEADROOM_BYTES

log = logging.getLogger(__name__)
_librdkafka_log = logging.getLogger("robostream.gateway.librdkafka")

#: How long ``produce`` waits for room in librdkafka's queue before trying again.
QUEUE_FULL_BACKOFF_S = 0.005


class DeliveryTracker:
    """Delivery reports of a group of records (one batch); ``done`` resolves on the loop.

    The event loop counts the records it hands to the producer (``produced``, see
    :meth:`GatewayProducer.produce_now`), then :meth:`seal` says no more are coming; reports
    arrive on the poll thread. ``errors`` maps a record's token to its Kafka error.
    """

    __slots__ = ("_expected", "_lock", "_loop", "_reported", "done", "errors", "produced")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._reported = 0
        self._expected: int | None = None  # set by seal()
        self.produced = 0  # written by the event loop only
        self.errors: dict[int, KafkaError] = {}
        self.done: asyncio.Future[None] = loop.create_future()

    def callback(self, token: int) -> Any:
        """The delivery callback of a record identified by ``token``."""
        return partial(self._report, token)

    def _report(self, token: int, err: KafkaError | None, _msg: Any) -> None:
        with self._lock:
            if err is not None:
                self.errors[token] = err
            self._reported += 1
            finished = self._reported == self._expected
        if finished:
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def seal(self) -> None:
        """No more records; call from the event loop."""
        with self._lock:
            self._expected = self.produced
            finished = self._reported == self._expected
        if finished:
            self._resolve()


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings of the gateway's producer."""
    gateway = settings.gateway
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        "client.id": f"{settings.kafka.client_id}-gateway",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": settings.kafka.compression,
        "linger.ms": settings.kafka.linger_ms,
        "message.max.bytes": settings.topics.max_message_bytes + DLQ_HEADROOM_BYTES,
        "message.timeout.ms": int(gateway.delivery_timeout_s * 1000),
        # The gateway bounds what it holds itself (max_inflight_bytes); librdkafka must not
        # refuse before that bound is reached.
        "queue.buffering.max.kbytes": min(2**31 - 1, 2 * gateway.max_inflight_bytes // 1024 + 65536),
        "queue.buffering.max.messages": 10_000_000,
        "logger": _librdkafka_log,
    }


class GatewayProducer:
    """A confluent-kafka ``Producer`` with a poll thread and non-blocking async ``send``."""

    def __init__(self, settings: Settings, overrides: dict[str, Any] | None = None) -> None:
        config = producer_config(settings) | dict(overrides or {})
        config["error_cb"] = self._on_error
        #: The librdkafka settings the producer runs with (read-only).
        self.config: Mapping[str, Any] = MappingProxyType(config)
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.kafka_error: str | None = None

    def start(self) -> None:
        """Start the poll thread (delivery reports).

        That thread runs a Python callback per record; with Python's default 5 ms GIL switch
        interval the event loop then waited up to 5 ms per handoff in the middle of a frame.
        """
        if self._thread is None:
            shorten_gil_handoffs()
            self._thread = threading.Thread(target=self._poll_forever, name="gateway-producer-poll",
                                            daemon=True)
            self._thread.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.kafka_error = f"{err.name()}: {err.str()}"
        log.warning("Kafka: %s", err.str())

    def probe(self, timeout: float = 2.0) -> str | None:
        """Blocking: None when a broker answers a metadata request, else the reason."""
        try:
            self._producer.list_topics(timeout=timeout)
        except Exception as exc:  # KafkaException: no broker answered
            return str(exc) or type(exc).__name__
        self.kafka_error = None
        return None

    def produce_now(self, topic: str, record: KafkaRecord, tracker: DeliveryTracker, token: int) -> bool:
        """Hand a record to librdkafka; False when its queue is full (try again later).

        Raises ``KafkaException`` (or ``ValueError``) when the record can never be sent.
        """
        try:
            self._producer.produce(topic, record.value, record.key, headers=cast(Any, record.headers),
                                   on_delivery=tracker.callback(token))
        except BufferError:
            return False
        tracker.produced += 1
        return True

    async def send(self, topic: str, record: KafkaRecord, tracker: DeliveryTracker, token: int) -> None:
        """Produce one record, waiting (without blocking the loop) while librdkafka's queue is full."""
        while not self.produce_now(topic, record, tracker, token):  # noqa: ASYNC110 (librdkafka has no event)
            await asyncio.sleep(QUEUE_FULL_BACKOFF_S)

    def topics(self, timeout: float = 10.0) -> list[str]:
        """Blocking: the names of the topics on the cluster."""
        return list(self._producer.list_topics(timeout=timeout).topics)

    def pending(self) -> int:
        """Records still waiting for a delivery report."""
        return len(self._producer)

    def flush(self, timeout: float) -> int:
        """Blocking: wait up to ``timeout`` s for every delivery report; returns how many are left."""
        deadline = time.monotonic() + timeout
        while len(self._producer) and time.monotonic() < deadline:
            self._producer.flush(min(0.2, max(0.0, deadline - time.monotonic())))
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> int:
        """Blocking: flush, then stop the poll thread; returns the records never reported."""
        left = self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        return left
