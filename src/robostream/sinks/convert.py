"""The converter stage: a consumed Kafka record -> what the sinks write (``SinkRecord.item``).

Which decoder runs is decided by the topic, from the catalogue:

* ``<prefix>.time_series``: the processors' fast Avro reader (``TimeSeriesReader``) ->
  :class:`~robostream.sinks.points.Telemetry` (minute buckets, as the processors make them);
* ``<prefix>.<other data type>``: ``decode_record`` -> :class:`~robostream.schemas.Envelope`
  (schema by id from the registry, ids re-validated, key and ``data_type`` header checked);
* ``<prefix>.sessions``: ``session_event`` Avro -> :class:`~robostream.sinks.base.SessionEvent`;
* the derived topics: :class:`~robostream.processors.DerivedCodec` ->
  :class:`~robostream.sinks.points.Telemetry` (``telemetry_bucketed``),
  :class:`~robostream.processors.WindowStats` (``stats_*``),
  :class:`~robostream.processors.FrameBatch` (``frames``), their ids validated here.

A record that can never be decoded raises :class:`~robostream.sinks.base.PoisonRecordError`
(errors.tolerance decides); a registry that cannot be reached raises
:class:`~robostream.sinks.base.RetriableSinkError` (the batch is retried, nothing goes to the DLQ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robostream.config import Settings, validate_id
from robostream.processors import (
    DerivedCodec,
    DerivedRecordError,
    FrameBatch,
    TelemetryBucket,
    WindowStats,
)
from robostream.processors.columns import TimeSeriesReader
from robostream.schemas import (
    DataType,
    SchemaIdResolver,
    ValidationError,
    decode_record,
    decode_value,
)
from robostream.schemas.envelope import record_key
from robostream.sinks.base import PoisonRecordError, RetriableSinkError, SessionEvent, SinkRecord
from robostream.sinks.points import Telemetry
from robostream.topics import (
    StatsResolution,
    bucketed_telemetry_topic,
    data_type_of,
    frames_topic,
    sessions_topic,
    stats_topic,
    topic_for,
)

Decoder = Callable[[SinkRecord], Any]


def is_transient(exc: BaseException) -> bool:
    """True for network trouble (registry or store unreachable) rather than bad data."""
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"TransportError", "NetworkError", "TimeoutException"}:
        return True
    status = getattr(exc, "http_status_code", None)
    return "SchemaRegistryError" in names and isinstance(status, int) and (status >= 500 or status < 0)


def _check_key(record: SinkRecord, robot_id: str, session_id: str) -> None:
    if record.key is not None and record.key != record_key(robot_id, session_id):
        raise PoisonRecordError(
            f"record key {record.key[:80]!r} does not match the value's {robot_id}/{session_id}")


def _check_ids(*pairs: tuple[str, str]) -> None:
    for value, what in pairs:
        validate_id(value, what)


class Converter:
    """Decodes records of the topics a connector reads (one instance per task)."""

    def __init__(self, settings: Settings, resolver: SchemaIdResolver) -> None:
        self.settings = settings
        self.resolver = resolver
        self._codec = DerivedCodec(resolver)
        self._reader = TimeSeriesReader(resolver)
        self._decoders: dict[str, Decoder] = {
            topic_for(DataType.TIME_SERIES, settings): self._time_series,
            sessions_topic(settings): self._session,
            bucketed_telemetry_topic(settings): self._bucket,
            frames_topic(settings): self._frames,
        }
        for resolution in StatsResolution:
            self._decoders[stats_topic(resolution, settings)] = self._stats

    # -- decoders ------------------------------------------------------------------------------

    def _envelope(self, record: SinkRecord) -> Any:
        return decode_record(record.value or b"", self.resolver, key=record.key,
                             headers=record.headers)

    def _time_series(self, record: SinkRecord) -> Telemetry:
        columns = self._reader.read(record.value or b"")
        _check_key(record, columns.robot_id, columns.session_id)
        return Telemetry.from_columns(columns)

    def _session(self, record: SinkRecord) -> SessionEvent:
        name, datum = decode_value(record.value or b"", self.resolver)
        if name != "session_event":
            raise PoisonRecordError(f"expected a session_event on {record.topic}, got {name}")
        return SessionEvent(datum)

    def _bucket(self, record: SinkRecord) -> Telemetry:
        bucket = self._codec.decode_as(record.value or b"", TelemetryBucket)
        _check_ids((bucket.robot_id, "robot_id"), (bucket.session_id, "session_id"))
        _check_key(record, bucket.robot_id, bucket.session_id)
        n = len(bucket)
        if not n or not len(bucket.seqs) == len(bucket.indexes) == n or any(
                len(column) != n for column in bucket.values.values()):
            raise PoisonRecordError("telemetry bucket columns differ in length")
        return Telemetry([bucket])

    def _stats(self, record: SinkRecord) -> WindowStats:
        stats = self._codec.decode_as(record.value or b"", WindowStats)
        _check_ids((stats.robot_id, "robot_id"), (stats.session_id, "session_id"))
        _check_key(record, stats.robot_id, stats.session_id)
        return stats

    def _frames(self, record: SinkRecord) -> FrameBatch:
        batch = self._codec.decode_as(record.value or b"", FrameBatch)
        _check_ids((batch.robot_id, "robot_id"), (batch.session_id, "session_id"),
                   (batch.camera_id, "camera_id"))
        _check_key(record, batch.robot_id, batch.session_id)
        return batch

    def decoder_for(self, topic: str) -> Decoder:
        """The decoder of ``topic``; raises :class:`PoisonRecordError` for a topic we cannot read."""
        decoder = self._decoders.get(topic)
        if decoder is not None:
            return decoder
        if data_type_of(topic, self.settings) is not None:
            return self._envelope
        raise PoisonRecordError(f"no sink converter for topic {topic!r}")

    def convert(self, record: SinkRecord) -> None:
        """Fill ``record.item``; raise ``PoisonRecordError`` or ``RetriableSinkError``."""
        try:
            record.item = self.decoder_for(record.topic)(record)
        except (PoisonRecordError, RetriableSinkError):
            raise
        except (ValidationError, DerivedRecordError, ValueError) as exc:
            raise PoisonRecordError(str(exc)) from exc
        except Exception as exc:
            if is_transient(exc):
                raise RetriableSinkError(
                    f"schema registry unreachable ({type(exc).__name__}: {exc})"
                ) from exc
            raise PoisonRecordError(f"{type(exc).__name__}: {exc}") from exc
