"""Codecs: robot frames <-> validated envelopes <-> Kafka records (Confluent wire format).

* :func:`decode_frame`: a JSON text frame or MessagePack binary frame holding one envelope or a
  list of them -> :class:`DecodedBatch` (good envelopes, per-envelope errors). A frame that does
  not parse at all raises :class:`ValidationError` (``malformed_frame``).
* :func:`encode_frame`: envelopes -> a frame (what the robot SDK sends).
* :func:`encode_record` / :func:`decode_record`: envelope <-> :class:`KafkaRecord` with key
  ``robot_id/session_id``, value = magic byte 0 + 4-byte big-endian schema id + Avro binary, and
  headers ``data_type``, ``seq``, ``content-type``, ``ingest_time`` (ms since the epoch).
* :func:`encode_value` / :func:`decode_value`: the same wire format for the other schemas
  (``rpc_event``, ``session_event``, ``envelope``).
"""

from __future__ import annotations

import io
import struct
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal, NamedTuple

import fastavro
import msgpack
import orjson
from fastavro.schema import to_parsing_canonical_form

from robostream.config import validate_id
from robostream.schemas import catalog, packed
from robostream.schemas.avro_columns import compile_writer, string_bytes, write_long
from robostream.schemas.avro_tags import Tagger, tagger_for
from robostream.schemas.avro_validate import compile_validator
from robostream.schemas.datatypes import DataType
from robostream.schemas.envelope import Envelope, parse_envelope
from robostream.schemas.payloads import ID_EXPECTED, check_decoded_payload, check_id
from robostream.schemas.resolver import SchemaIdResolver
from robostream.schemas.validation import ErrorCode, FieldError, ValidationError, describe
from robostream.times import datetime_to_us

FrameFormat = Literal["json", "msgpack"]
MAGIC_BYTE = 0
#: The Confluent wire format's header: ``MAGIC_BYTE`` and the schema id (4 bytes, big-endian).
WIRE_HEADER = struct.Struct(">bI")
_DATA_TYPES = {str(dt): dt for dt in DataType}
_NAME_TO_SCHEMA = {
    f"{catalog.NAMESPACE}.{catalog.load_schema(name)['name']}": name
    for name in catalog.schema_names()
}


class DecodedBatch(NamedTuple):
    """What a frame held: the valid envelopes, and one error per rejected envelope."""

    envelopes: list[Envelope]
    errors: list[ValidationError]


class KafkaRecord(NamedTuple):
    """A record ready for a Kafka producer (or read from a consumer)."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def wire_header(schema_id: int) -> bytes:
    """The 5 bytes every value in the Confluent wire format starts with."""
    return WIRE_HEADER.pack(MAGIC_BYTE, schema_id)


# -- frames ------------------------------------------------------------------------------------


def _malformed(detail: str, got: Any, expected: str) -> ValidationError:
    return ValidationError(
        ErrorCode.MALFORMED_FRAME, detail[:300], expected=expected, got=describe(got)
    )


def _load_frame(frame: bytes | bytearray | memoryview | str, fmt: FrameFormat) -> Any:
    try:
        if fmt == "json":
            return orjson.loads(frame)
        return msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as exc:  # every parser failure is the sender's fault, never a crash
        kind = "JSON" if fmt == "json" else "MessagePack"
        raise _malformed(
            f"frame is not valid {kind} ({type(exc).__name__}: {exc})",
            frame,
            f"a {kind} envelope or list of envelopes",
        ) from None


def frame_items(
    frame: bytes | bytearray | memoryview | str,
    fmt: FrameFormat | None = None,
    *,
    max_messages: int | None = None,
) -> tuple[list[Any], bool]:
    """The envelopes of a frame as parsed, not validated yet, and whether they came as JSON.

    Each goes through :func:`parse_envelope` (what :func:`decode_frame` does in one go; the
    gateway does it in slices so that one big frame does not hold its event loop). Raises
    :class:`ValidationError` (``malformed_frame`` / ``too_large``) for an unusable frame.
    """
    if fmt is None:
        fmt = "json" if isinstance(frame, str) else "msgpack"
    if fmt not in ("json", "msgpack"):
        raise ValueError(f"unknown frame format {fmt!r}: expected 'json' or 'msgpack'")
    decoded = _load_frame(frame, fmt)
    items = decoded if type(decoded) is list else [decoded] if type(decoded) is dict else None
    if items is None:
        raise _malformed("a frame holds an envelope or a list of envelopes", decoded, "a map or a list")
    if max_messages is not None and len(items) > max_messages:
        raise ValidationError(
            ErrorCode.TOO_LARGE, "too many envelopes in one batch",
            expected=f"at most {max_messages}", got=f"{len(items)} envelopes",
        )
    return items, fmt == "json"


def decode_frame(
    frame: bytes | bytearray | memoryview | str,
    fmt: FrameFormat | None = None,
    *,
    max_messages: int | None = None,
) -> DecodedBatch:
    """Decode and validate a frame: one envelope or a list (a batch) of them.

    ``fmt`` defaults to ``"json"`` for ``str`` frames (WebSocket text) and ``"msgpack"`` for bytes
    (WebSocket binary). Invalid envelopes are reported one by one; the valid ones are returned.
    Raises :class:`ValidationError` (``malformed_frame`` / ``too_large``) when the frame as a
    whole is unusable.
    """
    items, json_mode = frame_items(frame, fmt, max_messages=max_messages)
    batch = DecodedBatch([], [])
    for index, item in enumerate(items):
        parse_into(batch, index, item, json_mode)
    return batch


def parse_into(
    batch: DecodedBatch, index: int, item: Any, json_mode: bool, *, one_pass: bool = False
) -> None:
    """Validate envelope ``index`` of a frame into ``batch`` (its envelopes, or its errors);
    ``one_pass``: see :func:`~robostream.schemas.envelope.parse_envelope`."""
    try:
        batch.envelopes.append(parse_envelope(item, json_mode=json_mode, index=index, one_pass=one_pass))
    except ValidationError as exc:
        batch.errors.append(exc)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def encode_frame(envelopes: Envelope | Iterable[Envelope], fmt: FrameFormat = "msgpack") -> bytes:
    """Encode one envelope (a map) or several (a list) as a MessagePack or JSON frame.

    JSON frames carry bytes as base64 text and NaN (a missing time_series sample) as ``null``.
    """
    single = isinstance(envelopes, Envelope)
    wire: Any = envelopes.to_wire() if single else [e.to_wire() for e in envelopes]  # type: ignore[union-attr]
    if fmt == "json":
        return orjson.dumps(wire, default=_json_default)
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(wire, use_bin_type=True)
        return packed
    raise ValueError(f"unknown frame format {fmt!r}: expected 'json' or 'msgpack'")


# -- Kafka records -----------------------------------------------------------------------------


def _wire_value(
    schema_id: int, parsed: Any, datum: dict[str, Any], tag: Tagger | None = None
) -> bytes:
    buffer = io.BytesIO()
    buffer.write(wire_header(schema_id))
    fastavro.schemaless_writer(buffer, parsed, tag(datum) if tag else datum)
    return buffer.getvalue()


def encode_record(
    envelope: Envelope,
    resolver: SchemaIdResolver,
    *,
    topic_prefix: str = catalog.DEFAULT_TOPIC_PREFIX,
    ingest_time_ms: int | None = None,
) -> KafkaRecord:
    """Encode a validated envelope as a Kafka record of topic ``<topic_prefix>.<data_type>``.

    The schema id comes from ``resolver`` for subject ``<topic_prefix>.<data_type>-value``.
    ``ingest_time_ms`` defaults to now (a batch passes one value for all its records).
    ``time_series`` columns may be lists or packed bytes: the record is the same.
    """
    data_type = envelope.data_type
    schema_id = resolver.id_for(catalog.subject_for(data_type, topic_prefix), catalog.schema_str(data_type))
    try:
        if envelope.avro_payload is not None:  # written by the gateway's one-pass path
            value = b"".join((wire_header(schema_id), write_long(envelope.timestamp_us),
                              string_bytes(envelope.robot_id), string_bytes(envelope.session_id),
                              string_bytes(str(data_type)), write_long(envelope.seq), envelope.avro_payload))
        elif data_type is DataType.TIME_SERIES:
            value = wire_header(schema_id) + _time_series_writer()(_time_series_datum(envelope))
        else:
            value = _wire_value(
                schema_id, catalog.parsed_schema(data_type), envelope.to_avro(), tagger_for(str(data_type))
            )
    except (ValueError, TypeError, OverflowError, KeyError, AttributeError, struct.error) as exc:
        raise ValidationError(
            ErrorCode.INVALID_FIELD, f"envelope does not fit the Avro schema: {exc}"[:300],
            data_type=str(data_type), path="payload", seq=envelope.seq,
        ) from None
    ingest = int(time.time() * 1000) if ingest_time_ms is None else ingest_time_ms
    data_type_header, content_type_header = _static_headers(data_type)
    headers = [
        data_type_header,
        ("seq", str(envelope.seq).encode()),
        content_type_header,
        ("ingest_time", str(ingest).encode()),
    ]
    return KafkaRecord(envelope.key, value, headers)


@cache
def _static_headers(data_type: DataType) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
    content_type = catalog.content_type_for(data_type).encode()
    return ("data_type", str(data_type).encode()), ("content-type", content_type)


@cache
def _time_series_writer() -> Callable[[Any], bytes]:
    return compile_writer(catalog.load_schema(DataType.TIME_SERIES), catalog.NAMESPACE)


def _time_series_datum(envelope: Envelope) -> dict[str, Any]:
    """The Avro datum; a packed joint matrix is cut into its rows (the Avro shape)."""
    datum = envelope.to_avro()
    payload = datum["payload"]
    joints = payload["joints"]
    if joints is not None and any(type(joints[k]) is bytes for k in packed.JOINT_MATRICES):
        n = packed.count(payload["t"])
        rows = {k: packed.matrix_rows(joints[k], n) for k in packed.JOINT_MATRICES}
        datum["payload"] = {**payload, "joints": {**joints, **rows}}
    return datum


@dataclass(frozen=True)
class _ReadPlan:
    schema_name: str
    writer: Any
    reader: Any | None  # None when the writer schema is the catalogue's (no resolution)


_plans: weakref.WeakKeyDictionary[Any, dict[int, _ReadPlan]] = weakref.WeakKeyDictionary()


def _record_error(detail: str, **context: Any) -> ValidationError:
    return ValidationError(ErrorCode.MALFORMED_RECORD, detail[:300], **context)


def _plan_for(resolver: SchemaIdResolver, schema_id: int) -> _ReadPlan:
    try:
        cache = _plans.setdefault(resolver, {})
    except TypeError:  # resolver not weak-referenceable: no caching
        cache = {}
    plan = cache.get(schema_id)
    if plan is not None:
        return plan
    try:
        writer = resolver.schema_for(schema_id)
    except LookupError:
        raise ValidationError(
            ErrorCode.UNKNOWN_SCHEMA, f"schema id {schema_id} is not in the registry",
            expected="a registered schema id", got=str(schema_id),
        ) from None
    name = _NAME_TO_SCHEMA.get(str(writer.get("name", "")) if isinstance(writer, dict) else "")
    if name is None:
        raise ValidationError(
            ErrorCode.UNKNOWN_SCHEMA, f"schema id {schema_id} is not a robostream schema",
            expected="one of " + ", ".join(catalog.schema_names()),
            got=describe(writer.get("name") if isinstance(writer, dict) else writer),
        )
    ours = catalog.parsed_schema(name)
    same = to_parsing_canonical_form(writer) == to_parsing_canonical_form(ours)
    plan = _ReadPlan(name, ours if same else writer, None if same else ours)
    cache[schema_id] = plan
    return plan


def _read_value(value: bytes, resolver: SchemaIdResolver) -> tuple[str, dict[str, Any]]:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) < WIRE_HEADER.size:
        raise _record_error("value too short for the Confluent wire format", got=describe(value))
    magic, schema_id = WIRE_HEADER.unpack_from(value)
    if magic != MAGIC_BYTE:
        raise _record_error(
            "not the Confluent wire format", expected="magic byte 0", got=f"magic byte {magic}"
        )
    plan = _plan_for(resolver, schema_id)
    buffer = io.BytesIO(value)
    buffer.seek(WIRE_HEADER.size)
    try:
        datum = fastavro.schemaless_reader(buffer, plan.writer, plan.reader)
    except Exception as exc:  # truncated or corrupt Avro: report, never crash
        raise _record_error(
            f"Avro body does not decode with schema id {schema_id} ({type(exc).__name__}: {exc})",
            data_type=plan.schema_name,
        ) from None
    if buffer.tell() != len(value):
        raise _record_error(
            f"{len(value) - buffer.tell()} trailing bytes after the Avro body",
            data_type=plan.schema_name,
        )
    if not isinstance(datum, dict):
        raise _record_error("Avro body is not a record", data_type=plan.schema_name)
    return plan.schema_name, _micros_fields(datum)


def _micros_fields(datum: dict[str, Any]) -> dict[str, Any]:
    """Turn top-level timestamp-micros datetimes back into integer microseconds."""
    for key, item in datum.items():
        if isinstance(item, datetime):
            datum[key] = datetime_to_us(item)
    return datum


def _check_record_ids(datum: dict[str, Any], data_type: DataType) -> None:
    for field in ("robot_id", "session_id"):
        try:
            validate_id(datum[field], field)
        except ValueError:
            raise ValidationError(
                ErrorCode.INVALID_ID, "unsafe id in a Kafka record", data_type=str(data_type),
                path=field, expected=ID_EXPECTED, got=describe(datum[field]), seq=datum.get("seq"),
            ) from None
    try:
        check_decoded_payload(data_type, datum["payload"])
    except FieldError as exc:
        raise exc.at("payload").to_validation_error(
            data_type=str(data_type), seq=datum.get("seq")
        ) from None


def decode_record(
    value: bytes,
    resolver: SchemaIdResolver,
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, str | bytes | None]] | None = None,
) -> Envelope:
    """Decode a Kafka record value (Confluent wire format) back into an :class:`Envelope`.

    The writer schema comes from ``resolver`` by id; an older version of a data type's schema
    is resolved to the current one. Ids are re-validated before use. If ``key`` or a
    ``data_type`` header is given it must agree with the value. Raises :class:`ValidationError`
    (``malformed_record``, ``unknown_schema``, ``invalid_id``).
    """
    name, datum = _read_value(value, resolver)
    data_type = _DATA_TYPES.get(name)
    if data_type is None or datum.get("data_type") != name:
        raise _record_error(
            "record value is not a data type envelope", data_type=name,
            expected="one of the 17 data type schemas", got=describe(datum.get("data_type")),
        )
    _check_record_ids(datum, data_type)
    envelope = Envelope(
        datum["timestamp"], datum["robot_id"], datum["session_id"], data_type, datum["seq"],
        datum["payload"],
    )
    _check_key_and_headers(envelope, key, headers)
    return envelope


def _check_key_and_headers(
    envelope: Envelope, key: bytes | None, headers: Sequence[tuple[str, str | bytes | None]] | None
) -> None:
    if key is not None and bytes(key) != envelope.key:
        raise _record_error(
            "record key does not match the value's robot_id/session_id",
            data_type=str(envelope.data_type), expected=envelope.key.decode(), got=describe(key),
        )
    for name, header in headers or ():
        if isinstance(header, str):
            header = header.encode()
        if name == "data_type" and header is not None and header != str(envelope.data_type).encode():
            raise _record_error(
                "data_type header does not match the value", data_type=str(envelope.data_type),
                path="headers.data_type", got=describe(header),
            )


# -- other schemas -----------------------------------------------------------------------------


def validate_event(schema_name: str, datum: Any, *, json_mode: bool = False) -> dict[str, Any]:
    """Check and normalise a datum for ``rpc_event``, ``session_event`` or ``envelope``.

    Timestamps are integer microseconds (or aware datetimes); ids are checked. Raises
    :class:`ValidationError`.
    """
    if schema_name not in catalog.EVENT_SCHEMAS:
        raise ValueError(f"not an event schema: {schema_name!r}; use one of {catalog.EVENT_SCHEMAS}")
    try:
        out: dict[str, Any] = _event_validator(schema_name, json_mode)(datum)
        _check_event_ids(out)
    except FieldError as exc:
        raise exc.to_validation_error(data_type=schema_name) from None
    return out


_event_validators: dict[tuple[str, bool], Any] = {}


def _event_validator(schema_name: str, json_mode: bool) -> Any:
    key = (schema_name, json_mode)
    if key not in _event_validators:
        _event_validators[key] = compile_validator(
            catalog.load_schema(schema_name), json_mode=json_mode, namespace=catalog.NAMESPACE
        )
    return _event_validators[key]


def _check_event_ids(datum: dict[str, Any]) -> None:
    for field in ("robot_id", "session_id", "correlation_id"):
        if datum.get(field) is not None:
            check_id(datum[field], field)
    config = datum.get("config")
    for i, camera in enumerate(config["cameras"] if config else ()):
        try:
            check_id(camera["camera_id"], "camera_id")
        except FieldError as exc:
            raise exc.at(f"[{i}]").at("cameras").at("config") from None


def encode_value(
    schema_name: str, datum: dict[str, Any], resolver: SchemaIdResolver, subject: str
) -> bytes:
    """Validate ``datum`` against an event schema and encode it in the Confluent wire format."""
    checked = validate_event(schema_name, datum)
    schema_id = resolver.id_for(subject, catalog.schema_str(schema_name))
    return _wire_value(schema_id, catalog.parsed_schema(schema_name), checked, tagger_for(schema_name))


def decode_value(value: bytes, resolver: SchemaIdResolver) -> tuple[str, dict[str, Any]]:
    """Decode any robostream record value: ``(schema name, datum)``, timestamps in microseconds.

    Top-level ids are re-validated. Raises :class:`ValidationError`.
    """
    name, datum = _read_value(value, resolver)
    if name in catalog.EVENT_SCHEMAS:
        try:
            _check_event_ids(datum)
        except FieldError as exc:
            raise exc.to_validation_error(data_type=name) from None
    else:
        _check_record_ids(datum, DataType(name))
    return name, datum
