"""The envelope every robot message travels in, and its validation.

On the wire (JSON text or MessagePack binary frames) an envelope is a map::

    {"timestamp": 1718000000.123456, "robot_id": "robot_001", "session_id": "s-2024-06-10",
     "data_type": "time_series", "seq": 42, "payload": {...}}

* ``timestamp``: seconds since the Unix epoch, UTC (a number, like ``time.time()``; integers are
  seconds too), an ISO-8601 string with a UTC offset, or a MessagePack timestamp. Must lie in
  [1970-01-01, 2200-01-01): milliseconds or microseconds sent by mistake are rejected. NaN and
  infinities are rejected. Kept as integer microseconds (:attr:`Envelope.timestamp_us`).
* ``robot_id``, ``session_id``: strict ids (:data:`robostream.config.ID_PATTERN`, no ``..``).
* ``data_type``: one of the 17 :class:`DataType` values.
* ``seq``: an integer >= 0 (< 2^63).
* ``payload``: the data type's payload (see ``docs/schemas.md``).

Unknown top-level fields are rejected (``unknown_field``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgpack

from robostream.config import validate_id
from robostream.schemas.datatypes import BINARY_TYPES, DataType
from robostream.schemas.fast_time_series import encode_packed_payload
from robostream.schemas.payloads import ID_EXPECTED, check_claim_check, validate_payload
from robostream.schemas.validation import ErrorCode, FieldError, ValidationError, describe
from robostream.times import datetime_to_us, micros_to_datetime

ENVELOPE_FIELDS = ("timestamp", "robot_id", "session_id", "data_type", "seq", "payload")
MIN_TIMESTAMP_S = 0
MAX_TIMESTAMP_S = 7_258_118_400  # 2200-01-01T00:00:00Z
MAX_SEQ = 2**63 - 1
_DATA_TYPES = {str(dt): dt for dt in DataType}
_TIMESTAMP_EXPECTED = (
    "seconds since the Unix epoch (UTC) between 1970 and 2200, an ISO-8601 string with a UTC "
    "offset, or a MessagePack timestamp"
)


def record_key(robot_id: str, session_id: str) -> bytes:
    """The Kafka key of a session's records, raw and derived: ``robot_id/session_id`` (UTF-8)."""
    return f"{robot_id}/{session_id}".encode()


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated envelope. ``payload`` is Avro-shaped (see the data type's schema).

    Build one with :func:`build_envelope` (validates) or get them from
    :func:`robostream.schemas.codec.decode_frame` / ``decode_record``.
    """

    timestamp_us: int
    robot_id: str
    session_id: str
    data_type: DataType
    seq: int
    payload: dict[str, Any]
    #: the payload's Avro body when the gateway's one-pass path wrote it (``payload`` is then the
    #: payload as the robot sent it, checked but not normalised); None otherwise
    avro_payload: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def timestamp(self) -> datetime:
        """The timestamp as an aware UTC datetime."""
        return micros_to_datetime(self.timestamp_us)

    @property
    def timestamp_s(self) -> float:
        """The timestamp in seconds since the epoch (as robots send it)."""
        return self.timestamp_us / 1_000_000

    @property
    def key(self) -> bytes:
        """The Kafka record key: ``robot_id/session_id`` (orders records per session)."""
        return record_key(self.robot_id, self.session_id)

    def to_wire(self) -> dict[str, Any]:
        """The robot-facing map (timestamp in seconds), ready for MessagePack or JSON."""
        return {
            "timestamp": self.timestamp_us / 1_000_000,
            "robot_id": self.robot_id,
            "session_id": self.session_id,
            "data_type": str(self.data_type),
            "seq": self.seq,
            "payload": self.payload,
        }

    def to_avro(self) -> dict[str, Any]:
        """The Avro datum of the Kafka record value (timestamp in microseconds)."""
        return {
            "timestamp": self.timestamp_us,
            "robot_id": self.robot_id,
            "session_id": self.session_id,
            "data_type": str(self.data_type),
            "seq": self.seq,
            "payload": self.payload,
        }


def seconds_to_micros(seconds: float) -> int:
    """Exact conversion of float seconds to integer microseconds (round trip safe to 2242)."""
    whole = math.floor(seconds)
    return int(whole) * 1_000_000 + round((seconds - whole) * 1_000_000)


def timestamp_to_micros(value: Any) -> int:
    """Convert a wire timestamp to microseconds since the epoch, or raise ``FieldError``."""
    kind = type(value)
    if kind is float or kind is int:
        if kind is float and not math.isfinite(value):
            raise FieldError(ErrorCode.NON_FINITE, _TIMESTAMP_EXPECTED, describe(value))
        micros = value * 1_000_000 if kind is int else seconds_to_micros(value)
    elif kind is str:
        micros = _iso_to_micros(value)
    elif kind is msgpack.Timestamp:
        micros = value.to_unix_nano() // 1000
    elif isinstance(value, datetime) and value.tzinfo is not None:
        micros = datetime_to_us(value)
    else:
        raise FieldError(ErrorCode.INVALID_FIELD, _TIMESTAMP_EXPECTED, describe(value))
    if not MIN_TIMESTAMP_S * 1_000_000 <= micros < MAX_TIMESTAMP_S * 1_000_000:
        raise FieldError(ErrorCode.INVALID_FIELD, _TIMESTAMP_EXPECTED, describe(value))
    return int(micros)


def _iso_to_micros(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(ErrorCode.INVALID_FIELD, _TIMESTAMP_EXPECTED, describe(text)) from None
    if moment.tzinfo is None:
        raise FieldError(
            ErrorCode.INVALID_FIELD, "an ISO-8601 timestamp with a UTC offset (e.g. Z)", describe(text)
        )
    return datetime_to_us(moment)


def _data_type(obj: dict[str, Any]) -> DataType:
    if "data_type" not in obj:
        raise FieldError(ErrorCode.MISSING_FIELD, "one of " + ", ".join(_DATA_TYPES), "nothing").at(
            "data_type"
        )
    value = obj["data_type"]
    data_type = _DATA_TYPES.get(value) if type(value) is str else None
    if data_type is None:
        raise FieldError(
            ErrorCode.UNKNOWN_DATA_TYPE, "one of " + ", ".join(_DATA_TYPES), describe(value)
        ).at("data_type")
    return data_type


def _seq(obj: dict[str, Any]) -> int:
    value = obj.get("seq")
    if type(value) is not int or not 0 <= value <= MAX_SEQ:
        code = ErrorCode.MISSING_FIELD if "seq" not in obj else ErrorCode.INVALID_FIELD
        raise FieldError(code, f"an integer 0 .. {MAX_SEQ}", describe(value)).at("seq")
    return value


def _id(obj: dict[str, Any], field: str) -> str:
    if field not in obj:
        raise FieldError(ErrorCode.MISSING_FIELD, ID_EXPECTED, "nothing").at(field)
    value = obj[field]
    try:
        return validate_id(value, field)
    except ValueError:
        raise FieldError(ErrorCode.INVALID_ID, ID_EXPECTED, describe(value)).at(field) from None


def _check_keys(obj: dict[str, Any]) -> None:
    if len(obj) > len(ENVELOPE_FIELDS) or any(k not in ENVELOPE_FIELDS for k in obj):
        extra = next(k for k in obj if k not in ENVELOPE_FIELDS)
        raise FieldError(
            ErrorCode.UNKNOWN_FIELD,
            "only " + ", ".join(ENVELOPE_FIELDS),
            describe(extra),
            f"envelope has no field {extra!r}",
        ).at(str(extra))


def parse_envelope(
    obj: Any, *, json_mode: bool = False, index: int | None = None, one_pass: bool = False
) -> Envelope:
    """Validate one decoded envelope map (from JSON if ``json_mode``, else MessagePack).

    With ``one_pass`` (the gateway), a time_series payload whose columns are all packed is
    checked and written as Avro in one go (:attr:`Envelope.avro_payload`). Raises
    :class:`ValidationError` naming the data type, field path, expected type and what came.
    """
    if type(obj) is not dict:
        raise ValidationError(
            ErrorCode.INVALID_FIELD, "an envelope must be a map", expected="an object with "
            + ", ".join(ENVELOPE_FIELDS), got=describe(obj), index=index,
        )
    data_type: DataType | None = None
    seq: int | None = None
    try:
        data_type = _data_type(obj)
        seq = _seq(obj)
        _check_keys(obj)
        robot_id = _id(obj, "robot_id")
        session_id = _id(obj, "session_id")
        try:
            timestamp_us = timestamp_to_micros(obj["timestamp"]) if "timestamp" in obj else None
        except FieldError as exc:
            raise exc.at("timestamp") from None
        if timestamp_us is None:
            raise FieldError(ErrorCode.MISSING_FIELD, _TIMESTAMP_EXPECTED, "nothing").at("timestamp")
        if "payload" not in obj:
            raise FieldError(ErrorCode.MISSING_FIELD, "the payload object", "nothing").at("payload")
        avro_payload = None
        if one_pass and data_type is DataType.TIME_SERIES and not json_mode:
            avro_payload = encode_packed_payload(obj["payload"])
        if avro_payload is not None:
            payload = obj["payload"]
        else:
            try:
                payload = validate_payload(data_type, obj["payload"], json_mode=json_mode)
            except FieldError as exc:
                raise exc.at("payload") from None
    except FieldError as exc:
        raise exc.to_validation_error(
            data_type=str(data_type) if data_type else _claimed_type(obj), index=index, seq=seq
        ) from None
    except ValidationError as exc:  # from nested codecs (vuer)
        raise exc.located(data_type=str(data_type), index=index, seq=seq) from None
    except RecursionError:
        raise ValidationError(
            ErrorCode.TOO_LARGE, "envelope nested too deeply", index=index, seq=seq
        ) from None
    return Envelope(timestamp_us, robot_id, session_id, data_type, seq, payload, avro_payload)


def _claimed_type(obj: dict[str, Any]) -> str | None:
    value = obj.get("data_type")
    return value[:64] if type(value) is str else None


def build_envelope(
    data_type: DataType | str,
    payload: dict[str, Any],
    *,
    robot_id: str,
    session_id: str,
    seq: int,
    timestamp: float | datetime | None = None,
) -> Envelope:
    """Validate and build an envelope in Python (bytes stay bytes; ``timestamp`` defaults to now).

    ``timestamp`` is seconds since the epoch or an aware datetime. Raises :class:`ValidationError`.
    """
    moment = datetime.now(UTC) if timestamp is None else timestamp
    return parse_envelope(
        {
            "timestamp": moment,
            "robot_id": robot_id,
            "session_id": session_id,
            "data_type": str(data_type),
            "seq": seq,
            "payload": payload,
        }
    )


def inline_blob(envelope: Envelope) -> bytes | None:
    """The inline bytes of a binary data type's blob, or None (not binary, or already by reference)."""
    if envelope.data_type not in BINARY_TYPES:
        return None
    content = envelope.payload["blob"]["content"]
    return content if isinstance(content, bytes) else None


def with_claim_check(envelope: Envelope, *, bucket: str, key: str) -> tuple[Envelope, bytes]:
    """Move a blob's inline bytes out of the envelope (the claim-check pattern).

    Returns the envelope whose ``blob.content`` is ``{bucket, key, size, sha256}`` and the bytes to
    upload to ``s3://bucket/key``. Raises ``ValueError`` if the envelope has no inline blob and
    :class:`ValidationError` for an unsafe bucket or key.
    """
    content = inline_blob(envelope)
    if content is None:
        raise ValueError(f"{envelope.data_type} envelope seq {envelope.seq} has no inline blob")
    blob = envelope.payload["blob"]
    ref = {"bucket": bucket, "key": key, "size": blob["size_bytes"], "sha256": blob["sha256"]}
    try:
        check_claim_check(ref, blob)
    except FieldError as exc:
        raise exc.at("content").at("blob").at("payload").to_validation_error(
            data_type=str(envelope.data_type), seq=envelope.seq
        ) from None
    payload = {**envelope.payload, "blob": {**blob, "content": ref}}
    return replace(envelope, payload=payload), content
