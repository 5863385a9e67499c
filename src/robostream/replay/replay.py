"""Replay a recorded session: read it back in recorded-time order, keep its timing (scaled by a
speed) and re-publish it into a topic namespace (``replay.robot.<data_type>``) or through the
gateway as the robot.

Into a namespace the records are copied as they are (key, Avro value with its schema id, headers)
plus a ``replayed_from`` header (``topic:partition:offset``); their Kafka timestamp is the replay
time, so retention and ``offsets_for_times`` on the namespace follow the replay. The namespace's
topics are created like the catalogue's (same partitions and configs) and its subjects
(``replay.robot.<data_type>-value``) registered.

Through the gateway the SDK (:class:`~robostream_sdk.SyncRobotClient`) sends the envelopes
of a new session (default ``<session>-replay``) with their recorded timestamps (or shifted to now
with ``retime``); the SDK numbers ``seq`` from 0 again.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from robostream.config import Settings, validate_id
from robostream.replay.progress import NoProgress, ProgressReporter
from robostream.replay.reader import (
    KAFKA_TIMEOUT_S,
    ReplayError,
    SessionQuery,
    SessionReader,
    SessionRecord,
    describe_kafka_error,
    partitions_of,
    reader_admin,
)
from robostream.schemas import DataType, SchemaIdResolver, schema_str, subject_for
from robostream.times import micros_to_datetime
from robostream.topics.admin import new_topic
from robostream.topics.catalog import DLQ_HEADROOM_BYTES, data_topic_specs, topic_for, validate_namespace

#: Header naming the record a replayed record was copied from.
REPLAYED_FROM_HEADER = "replayed_from"


# --- timing -------------------------------------------------------------------------------------


class Pacer:
    """Keeps the recorded gaps between records, divided by ``speed`` (``None``: no waiting).

    The first record sets the anchor; record ``i`` is due at
    ``anchor_wall + (t_i - t_0) / speed``. A record already late is sent at once (the replay
    catches up instead of drifting).
    """

    def __init__(self, speed: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be > 0 (or None for max)")
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._anchor: tuple[float, int] | None = None
        self.first_wall: float | None = None
        self.last_wall: float | None = None

    def wait(self, timestamp_us: int) -> None:
        """Sleep until the record recorded at ``timestamp_us`` is due."""
        now = self._clock()
        if self._anchor is None:
            self._anchor = (now, timestamp_us)
            self.first_wall = now
        elif self.speed is not None:
            wall0, ts0 = self._anchor
            due = wall0 + (timestamp_us - ts0) / 1_000_000 / self.speed
            if due > now:
                self._sleep(due - now)
                now = self._clock()
        self.last_wall = now

    @property
    def paced_s(self) -> float:
        """Wall time between the first and the last record."""
        if self.first_wall is None or self.last_wall is None:
            return 0.0
        return self.last_wall - self.first_wall


# --- destinations -------------------------------------------------------------------------------


class Publisher(Protocol):
    """Where replayed records go."""

    destination: str

    def publish(self, record: SessionRecord) -> None: ...

    def close(self) -> None: ...


def ensure_namespace_topics(settings: Settings, namespace: str, types: Sequence[DataType],
                            admin: AdminClient | None = None) -> list[str]:
    """Create the data type topics of ``namespace`` that are missing (catalogue layout and
    configs); returns the names of those created."""
    admin = admin or reader_admin(settings)
    wanted = {topic_for(dt, namespace) for dt in types}
    specs = [s for s in data_topic_specs(settings, namespace=namespace) if s.name in wanted]
    existing = set(admin.list_topics(timeout=KAFKA_TIMEOUT_S).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics([new_topic(s) for s in missing], operation_timeout=KAFKA_TIMEOUT_S,
                                  request_timeout=KAFKA_TIMEOUT_S)
    created = []
    for spec in missing:
        try:
            futures[spec.name].result()
            created.append(spec.name)
        except Exception as exc:  # KafkaException: an existing topic is fine, others are not
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise ReplayError(f"cannot create {spec.name}: {describe_kafka_error(exc)}") from None
    _await_topics(admin, settings, created)
    return created


def _await_topics(admin: AdminClient, settings: Settings, names: list[str]) -> None:
    deadline = time.monotonic() + KAFKA_TIMEOUT_S
    while names and time.monotonic() < deadline:
        try:
            partitions_of(admin, names, settings.kafka.bootstrap)
            return
        except ReplayError:
            time.sleep(0.2)


def replay_producer_config(settings: Settings) -> dict[str, Any]:
    """An idempotent, ``acks=all`` producer (per-session order survives retries)."""
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        "client.id": f"{settings.kafka.client_id}-replay",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": settings.kafka.compression,
        "linger.ms": settings.kafka.linger_ms,
        "message.max.bytes": settings.topics.max_message_bytes + DLQ_HEADROOM_BYTES,
    }


class TopicPublisher:
    """Copies records into the data type topics of a namespace (e.g. ``replay.robot``)."""

    def __init__(self, settings: Settings, namespace: str, types: Sequence[DataType],
                 resolver: SchemaIdResolver) -> None:
        self.namespace = validate_namespace(namespace)
        if namespace == settings.topics.prefix:
            raise ReplayError(f"refusing to replay into the live topics ({namespace}.*): choose "
                              "another namespace, e.g. replay." + namespace)
        self.destination = f"{namespace}.*"
        ensure_namespace_topics(settings, namespace, types)
        _register_subjects(resolver, namespace, types)
        self._producer = Producer(replay_producer_config(settings))
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{err.name()}: {err.str()}")

    def publish(self, record: SessionRecord) -> None:
        topic = topic_for(record.envelope.data_type, self.namespace)
        headers: list[tuple[str, str | bytes | None]] = [*record.headers,
                   (REPLAYED_FROM_HEADER, f"{record.topic}:{record.partition}:{record.offset}".encode())]
        while True:
            try:
                self._producer.produce(topic, record.value, record.key, headers=headers,
                                       on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)
        if self._errors:
            raise ReplayError(f"Kafka refused a replayed record: {self._errors[0]}")

    def close(self) -> None:
        left = self._producer.flush(KAFKA_TIMEOUT_S * 2)
        if self._errors or left:
            reason = self._errors[0] if self._errors else f"{left} record(s) not delivered in time"
            raise ReplayError(f"replay into {self.destination} incomplete: {reason}")


def _register_subjects(resolver: SchemaIdResolver, namespace: str, types: Sequence[DataType]) -> None:
    """Register each data type's schema under the namespace's subject (TopicNameStrategy)."""
    for data_type in types:
        try:
            resolver.id_for(subject_for(data_type, namespace), schema_str(data_type))
        except Exception as exc:  # the registry's client raises its own error types
            raise ReplayError(f"cannot register {subject_for(data_type, namespace)} in the schema "
                              f"registry: {exc}") from None


def default_replay_session(session_id: str) -> str:
    """``<session>-replay``, shortened to stay a valid id."""
    return validate_id(f"{session_id[:57]}-replay", "session_id")


class GatewayPublisher:
    """Sends the envelopes through the gateway as the robot, in a session of its own.

    Uses the robot SDK with a throw-away spool (``spool_dir``, default a temporary folder), so
    nothing of the replay stays on disk for the robot's own client.
    """

    def __init__(self, settings: Settings, gateway_url: str, robot_id: str, session_id: str, *,
                 token: str | None = None, retime: bool = False, spool_dir: Path | None = None) -> None:
        from robostream_sdk import SyncRobotClient

        self.destination = f"gateway {gateway_url} as {robot_id}, session {session_id}"
        self._tmp = tempfile.TemporaryDirectory(prefix="robostream-replay-") if spool_dir is None else None
        spool = Path(self._tmp.name) if self._tmp is not None else spool_dir
        self._client = SyncRobotClient.from_settings(settings, robot_id, token=token,
                                                     gateway_url=gateway_url, spool_dir=spool)
        self._retime = retime
        self._shift_us: int | None = None
        self.session_id = self._client.start_session(session_id=session_id)

    def _timestamp(self, timestamp_us: int) -> datetime:
        if self._retime:
            if self._shift_us is None:
                now_us = int(time.time() * 1_000_000)
                self._shift_us = now_us - timestamp_us
            timestamp_us += self._shift_us
        return micros_to_datetime(timestamp_us)

    def publish(self, record: SessionRecord) -> None:
        envelope = record.envelope
        self._client.send(envelope.data_type, envelope.payload, self._timestamp(envelope.timestamp_us))

    def close(self) -> None:
        try:
            stats = self._client.end_session(timeout_s=KAFKA_TIMEOUT_S * 4)
            if not stats.drained:
                raise ReplayError(f"the gateway did not ack every replayed record in time "
                                  f"({self._client.counters}); unacked batches were dropped with "
                                  "the temporary spool")
        finally:
            self._client.close()
            if self._tmp is not None:
                self._tmp.cleanup()


# --- the replay ---------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What a replay did."""

    destination: str
    records: int = 0
    per_type: Counter[str] = field(default_factory=Counter)
    first_timestamp_us: int | None = None
    last_timestamp_us: int | None = None
    paced_s: float = 0.0  # wall time from the first to the last record sent
    elapsed_s: float = 0.0  # the whole run, set-up included
    skipped: int = 0  # records of the session that did not decode

    @property
    def span_s(self) -> float:
        """The recorded time between the first and the last record."""
        if self.first_timestamp_us is None or self.last_timestamp_us is None:
            return 0.0
        return (self.last_timestamp_us - self.first_timestamp_us) / 1_000_000

    def count(self, record: SessionRecord) -> None:
        ts = record.envelope.timestamp_us
        self.records += 1
        self.per_type[str(record.envelope.data_type)] += 1
        if self.first_timestamp_us is None:
            self.first_timestamp_us = ts
        self.last_timestamp_us = ts if self.last_timestamp_us is None else max(ts, self.last_timestamp_us)


def replay(settings: Settings, query: SessionQuery, publisher: Publisher, resolver: SchemaIdResolver,
           *, speed: float | None = None, progress: ProgressReporter | None = None) -> ReplayReport:
    """Read the session of ``query`` and hand its records to ``publisher`` at ``speed``
    (``None``: as fast as possible). Closes the publisher. Raises :class:`ReplayError`."""
    progress = progress or NoProgress()
    started = time.monotonic()
    report = ReplayReport(publisher.destination)
    pacer = Pacer(speed)
    try:
        with SessionReader(settings, query, resolver, on_progress=progress.advance) as reader:
            progress.start(reader.total_offsets, f"replay {query.robot_id}/{query.session_id}")
            for record in reader:
                pacer.wait(record.envelope.timestamp_us)
                publisher.publish(record)
                report.count(record)
                if report.records % 100 == 1:
                    at = f"{record.envelope.timestamp:%H:%M:%S.%f}"[:-3]
                    progress.note(f"{report.records:,} records · {at}")
            report.skipped = reader.skipped
        progress.note(f"{report.records:,} records")
    except BaseException:
        progress.stop()
        with contextlib.suppress(Exception):  # the first error is the one to report
            publisher.close()
        raise
    progress.stop()
    publisher.close()
    report.paced_s = pacer.paced_s
    report.elapsed_s = time.monotonic() - started
    return report
