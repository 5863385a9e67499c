"""The wire contract as the robot needs it: data type names, ids, and the envelope check.

The platform's gateway imports these definitions from here (one home) and runs its full
validator (the Avro schemas) on every frame; :func:`build_envelope` is the light check a robot
runs before sending, with the gateway's error codes, so the mistakes a robot can make (a wrong
type name, a missing field, a bad id, a timestamp in milliseconds) fail at once on the robot
instead of coming back as nacks.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Any

from robostream_sdk.errors import ErrorCode, FieldError, StrEnum, ValidationError, describe


class DataType(StrEnum):
    """Every data type of the seed, as it appears in envelopes, topic names and schema subjects."""

    TIME_SERIES = "time_series"
    PARAMETERS = "parameters"
    IMAGES = "images"
    VIDEO = "video"
    AUDIO = "audio"
    LOG = "log"
    MARKDOWN = "markdown"
    FILE = "file"
    CSV = "csv"
    SAFETENSORS = "safetensors"
    JSON = "json"
    YAML = "yaml"
    TOML = "toml"
    MSGPACK = "msgpack"
    VUER_MSG = "vuer_msg"
    ZIP = "zip"
    TAR = "tar"


#: Types whose payload is an opaque binary blob (format, size, checksum, inline bytes or S3 ref):
#: the gateway claim-checks big ones to S3 and the S3 sink stores them as objects. The topics'
#: ``MEDIA_TYPES`` (media retention) are derived from it.
BINARY_TYPES: frozenset[DataType] = frozenset(
    {
        DataType.IMAGES,
        DataType.VIDEO,
        DataType.AUDIO,
        DataType.FILE,
        DataType.SAFETENSORS,
        DataType.ZIP,
        DataType.TAR,
        DataType.MSGPACK,
    }
)

#: Metadata-like types: documents and settings, sent as JSON text frames by the SDK's ``auto``
#: framing (the seed: "JSON for metadata, MessagePack for binary"); every other type goes as
#: MessagePack binary frames.
METADATA_TYPES: frozenset[DataType] = frozenset(
    {
        DataType.PARAMETERS,
        DataType.LOG,
        DataType.MARKDOWN,
        DataType.JSON,
        DataType.YAML,
        DataType.TOML,
        DataType.CSV,
    }
)

#: The payload fields without a default in each data type's Avro schema (a unit test of the
#: platform keeps this table equal to the schemas).
REQUIRED_FIELDS: dict[DataType, tuple[str, ...]] = {
    DataType.TIME_SERIES: ("t",),
    DataType.PARAMETERS: ("values",),
    DataType.IMAGES: ("camera_id", "kind", "width", "height", "blob"),
    DataType.VIDEO: ("camera_id", "width", "height", "fps", "frame_count", "duration_us", "blob"),
    DataType.AUDIO: ("source_id", "sample_rate_hz", "channels", "duration_us", "blob"),
    DataType.LOG: ("level", "message"),
    DataType.MARKDOWN: ("text",),
    DataType.FILE: ("name", "blob"),
    DataType.CSV: ("text",),
    DataType.SAFETENSORS: ("name", "blob"),
    DataType.JSON: ("text",),
    DataType.YAML: ("text",),
    DataType.TOML: ("text",),
    DataType.MSGPACK: ("blob",),
    DataType.VUER_MSG: ("etype", "data"),
    DataType.ZIP: ("name", "blob"),
    DataType.TAR: ("name", "blob"),
}

#: The payload fields that are Avro enums, and their symbols (kept equal to the schemas by a test).
ENUM_FIELDS: dict[DataType, dict[str, tuple[str, ...]]] = {
    DataType.IMAGES: {"kind": ("rgb", "depth", "pointcloud", "thumbnail", "other")},
    DataType.LOG: {"level": ("debug", "info", "warning", "error", "critical")},
}

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ID_EXPECTED = (
    "1-64 characters of letters, digits, '_', '-' or '.', starting with a letter or digit, "
    "without '/', '..' or control characters"
)
_ID_RE = re.compile(ID_PATTERN)
MAX_SEQ = 2**63 - 1
MAX_TIMESTAMP_S = 7_258_118_400  # 2200-01-01T00:00:00Z
_DATA_TYPES = {str(dt): dt for dt in DataType}
_TIMESTAMP_EXPECTED = "seconds since the Unix epoch (UTC) between 1970 and 2200, or an aware datetime"


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a safe robot/session/camera id, else raise ``ValueError``."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"invalid {what} {value!r}: expected 1-64 characters of letters, digits, '_', '-' or "
            "'.', starting with a letter or digit, with no '/', '..' or control characters"
        )
    return value


def check_id(value: Any, field: str) -> str:
    """``value`` if it is a safe id, else a :class:`FieldError` (``invalid_id``) at ``field``."""
    try:
        return validate_id(value, field)
    except ValueError:
        raise FieldError(ErrorCode.INVALID_ID, ID_EXPECTED, describe(value)).at(field) from None


def data_type_of(value: Any) -> DataType:
    """The :class:`DataType` named ``value``, else a :class:`FieldError` (``unknown_data_type``)."""
    data_type = _DATA_TYPES.get(value) if isinstance(value, str) else None
    if data_type is None:
        raise FieldError(ErrorCode.UNKNOWN_DATA_TYPE, "one of " + ", ".join(_DATA_TYPES), describe(value))
    return data_type


def _seconds(timestamp: float | datetime | None) -> float:
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise FieldError(ErrorCode.INVALID_FIELD, "an aware datetime (tzinfo=timezone.utc)",
                             describe(timestamp))
        seconds = timestamp.timestamp()
    elif type(timestamp) in (int, float):
        seconds = float(timestamp)
        if not math.isfinite(seconds):
            raise FieldError(ErrorCode.NON_FINITE, _TIMESTAMP_EXPECTED, describe(timestamp))
    else:
        raise FieldError(ErrorCode.INVALID_FIELD, _TIMESTAMP_EXPECTED, describe(timestamp))
    if not 0 <= seconds < MAX_TIMESTAMP_S:
        raise FieldError(ErrorCode.INVALID_FIELD, _TIMESTAMP_EXPECTED, describe(timestamp))
    return seconds


def check_payload(data_type: DataType, payload: Any) -> None:
    """The robot-side payload check: a map, its required fields present, its enums known."""
    if not isinstance(payload, dict):
        raise FieldError(ErrorCode.INVALID_FIELD, f"a {data_type} payload object", describe(payload))
    for name in REQUIRED_FIELDS[data_type]:
        if name not in payload or payload[name] is None:
            raise FieldError(ErrorCode.MISSING_FIELD, f"the {name!r} field of a {data_type} payload",
                             "nothing").at(name)
    for name, symbols in ENUM_FIELDS.get(data_type, {}).items():
        if payload[name] not in symbols:
            raise FieldError(ErrorCode.INVALID_FIELD, "one of " + ", ".join(symbols),
                             describe(payload[name])).at(name)
    if data_type in (DataType.IMAGES, DataType.VIDEO):
        check_id(payload["camera_id"], "camera_id")


def build_envelope(
    data_type: DataType | str,
    payload: dict[str, Any],
    *,
    robot_id: str,
    session_id: str,
    seq: int,
    timestamp: float | datetime | None = None,
) -> dict[str, Any]:
    """The wire map of one envelope, after the robot-side check (``timestamp`` defaults to now).

    ``timestamp`` is seconds since the epoch (``time.time()``) or an aware datetime. Raises
    :class:`ValidationError` with the gateway's codes; the gateway checks the rest of the schema.
    """
    claimed = data_type if isinstance(data_type, str) else None
    known: DataType | None = None
    try:
        known = data_type_of(data_type)
        claimed = str(known)
        if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
            raise FieldError(ErrorCode.INVALID_FIELD, f"an integer 0 .. {MAX_SEQ}", describe(seq)).at("seq")
        check_id(robot_id, "robot_id")
        check_id(session_id, "session_id")
        try:
            seconds = _seconds(timestamp)
        except FieldError as exc:
            raise exc.at("timestamp") from None
        try:
            check_payload(known, payload)
        except FieldError as exc:
            raise exc.at("payload") from None
    except FieldError as exc:
        where = "data_type" if known is None else None
        if where:
            exc.at(where)
        raise exc.to_validation_error(data_type=claimed[:64] if claimed else None,
                                      seq=seq if type(seq) is int else None) from None
    return {"timestamp": seconds, "robot_id": robot_id, "session_id": session_id,
            "data_type": claimed, "seq": seq, "payload": payload}


__all__ = [
    "BINARY_TYPES",
    "ENUM_FIELDS",
    "ID_PATTERN",
    "METADATA_TYPES",
    "REQUIRED_FIELDS",
    "DataType",
    "ValidationError",
    "build_envelope",
    "validate_id",
]
