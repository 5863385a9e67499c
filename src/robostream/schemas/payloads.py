"""Payload rules per data type: the Avro schema check plus what Avro cannot say.

:func:`validate_payload` runs, for one data type: an optional *prepare* step on the raw input
(flatten nested parameters, compute a blob's size and SHA-256, pack a structured vuer body),
the compiled schema check (:mod:`robostream.schemas.avro_validate`), then the semantic
*check* (ids, equal column lengths, checksums, parseable documents, ``$dtype`` arrays).

NaN policy: only time_series sample values may be NaN (a missing sample; ``null`` in JSON).
Every other double (parameters, video fps) must be finite. Infinities are never accepted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgpack
import orjson
import yaml

from robostream.schemas import catalog, packed
from robostream.schemas.avro_validate import Validator, b64decode_field, compile_validator
from robostream.schemas.datatypes import BINARY_TYPES, DataType
from robostream.schemas.validation import ErrorCode, FieldError, describe
from robostream.schemas.vuer import decode_tree, encode_vuer
from robostream_sdk.contract import ID_EXPECTED, validate_id

CHANNEL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
FORMAT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+/_-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_PARAMETER_NAME = 256
MAX_PARAMETER_DEPTH = 32

Prepare = Callable[[Any, bool], Any]
Check = Callable[[dict[str, Any], bool], None]


@dataclass(frozen=True)
class PayloadRules:
    """What a data type adds to its Avro schema."""

    allow_nan: bool = False
    prepare: Prepare | None = None
    check: Check | None = None


# -- small checks ------------------------------------------------------------------------------


def check_id(value: str, field: str) -> None:
    """Raise ``invalid_id`` at ``field`` unless ``value`` is a safe id (config.ID_PATTERN)."""
    try:
        validate_id(value, field)
    except ValueError:
        raise FieldError(ErrorCode.INVALID_ID, ID_EXPECTED, describe(value)).at(field) from None


def check_filename(value: str | None, field: str = "name") -> None:
    """A bare file name: 1-255 characters, no path separators, control characters, '.' or '..'."""
    if value is None:
        return
    if (
        not 1 <= len(value) <= 255
        or "/" in value
        or "\\" in value
        or value in (".", "..")
        or _CONTROL_RE.search(value)
    ):
        raise FieldError(
            ErrorCode.INVALID_FIELD,
            "a file name of 1-255 characters without '/', '\\', control characters, '.' or '..'",
            describe(value),
        ).at(field)


def _at_least(payload: dict[str, Any], field: str, low: float, strict: bool = False) -> None:
    value = payload[field]
    if value < low or (strict and value == low):
        sign = ">" if strict else ">="
        raise FieldError(ErrorCode.INVALID_FIELD, f"{sign} {low}", describe(value)).at(field)


def _invalid(field: str, expected: str, got: Any, detail: str | None = None) -> FieldError:
    return FieldError(ErrorCode.INVALID_FIELD, expected, describe(got), detail).at(field)


# -- blobs -------------------------------------------------------------------------------------


def _prepare_blob(payload: Any, json_mode: bool) -> Any:
    """Decode base64 content, then fill in or verify ``size_bytes`` and ``sha256``."""
    if type(payload) is not dict or type(payload.get("blob")) is not dict:
        return payload
    blob = dict(payload["blob"])
    content = blob.get("content")
    if json_mode and type(content) is str:
        try:
            content = b64decode_field(content)
        except FieldError as exc:
            raise exc.at("content").at("blob") from None
        blob["content"] = content
    if isinstance(content, bytes | bytearray | memoryview):
        _fill_checksums(blob, bytes(content))
    elif "content" in blob and type(content) is not dict:
        expected = "base64 text" if json_mode else "bytes (MessagePack bin)"
        raise _invalid("content", f"{expected} or a claim-check object", content).at("blob")
    return {**payload, "blob": blob}


def _fill_checksums(blob: dict[str, Any], content: bytes) -> None:
    size = len(content)
    if "size_bytes" in blob and blob["size_bytes"] != size:
        raise FieldError(
            ErrorCode.CHECKSUM_MISMATCH, f"{size} (the inline content's size)",
            describe(blob["size_bytes"]), "size_bytes does not match the content",
        ).at("size_bytes").at("blob")
    blob["size_bytes"] = size
    digest = hashlib.sha256(content).hexdigest()
    given = blob.get("sha256")
    if given is not None and (type(given) is not str or given.lower() != digest):
        raise FieldError(
            ErrorCode.CHECKSUM_MISMATCH, f"{digest} (SHA-256 of the content)",
            describe(given), "sha256 does not match the content",
        ).at("sha256").at("blob")
    blob["sha256"] = digest


def _check_blob(blob: dict[str, Any], deep: bool) -> None:
    try:
        _check_blob_fields(blob)
    except FieldError as exc:
        raise exc.at("blob") from None


def _check_blob_fields(blob: dict[str, Any]) -> None:
    if not FORMAT_RE.fullmatch(blob["format"]):
        raise _invalid("format", "1-64 characters of [A-Za-z0-9.+/_-]", blob["format"])
    _at_least(blob, "size_bytes", 0)
    if not SHA256_RE.fullmatch(blob["sha256"]):
        raise _invalid("sha256", "64 lowercase hex digits", blob["sha256"])
    content = blob["content"]
    if isinstance(content, bytes):
        if len(content) != blob["size_bytes"]:
            raise FieldError(
                ErrorCode.CHECKSUM_MISMATCH, str(len(content)), describe(blob["size_bytes"])
            ).at("size_bytes")
        return
    try:
        check_claim_check(content, blob)
    except FieldError as exc:
        raise exc.at("content") from None


def check_claim_check(ref: dict[str, Any], blob: dict[str, Any]) -> None:
    """Check a claim-check reference (bucket, safe key) against its blob's size and checksum."""
    if not BUCKET_RE.fullmatch(ref["bucket"]):
        raise _invalid("bucket", "an S3 bucket name: 3-63 characters of [a-z0-9.-]", ref["bucket"])
    key = ref["key"]
    if (
        not 1 <= len(key) <= 1024
        or key.startswith("/")
        or ".." in key.split("/")
        or _CONTROL_RE.search(key)
    ):
        raise _invalid(
            "key", "an S3 key of 1-1024 characters, no leading '/', '..' segment or control "
            "characters", key,
        )
    if ref["size"] != blob["size_bytes"]:
        raise FieldError(
            ErrorCode.CHECKSUM_MISMATCH, f"{blob['size_bytes']} (blob.size_bytes)",
            describe(ref["size"]),
        ).at("size")
    if ref["sha256"] != blob["sha256"]:
        raise FieldError(
            ErrorCode.CHECKSUM_MISMATCH, f"{blob['sha256']} (blob.sha256)", describe(ref["sha256"])
        ).at("sha256")


def _binary_check(ids: tuple[str, ...] = (), name: bool = True) -> Check:
    def check(payload: dict[str, Any], deep: bool) -> None:
        for field in ids:
            check_id(payload[field], field)
        if name:
            check_filename(payload["name"])
        _check_blob(payload["blob"], deep)

    return check


def _camera_check(extra: Callable[[dict[str, Any]], None]) -> Check:
    base = _binary_check(("camera_id",), name=False)

    def check(payload: dict[str, Any], deep: bool) -> None:
        base(payload, deep)
        _at_least(payload, "width", 0)
        _at_least(payload, "height", 0)
        extra(payload)

    return check


def _video_extra(payload: dict[str, Any]) -> None:
    _at_least(payload, "fps", 0, strict=True)
    _at_least(payload, "frame_count", 0)
    _at_least(payload, "duration_us", 0)


def _audio_check(payload: dict[str, Any], deep: bool) -> None:
    _binary_check(("source_id",), name=False)(payload, deep)
    _at_least(payload, "sample_rate_hz", 0, strict=True)
    _at_least(payload, "channels", 1)
    _at_least(payload, "duration_us", 0)


# -- time_series -------------------------------------------------------------------------------


def _values(column: Any, expected: int | None = None) -> str:
    if type(column) is bytes:
        hint = " (float32? pack float64)" if expected is not None and len(column) == 4 * expected else ""
        return f"{len(column) // 8} values ({len(column)} packed bytes){hint}"
    return f"{len(column)} values"


def _columns(group: dict[str, Any], n: int, names: tuple[str, ...]) -> None:
    for name in names:
        column = group[name]
        if packed.count(column) != n:
            raise FieldError(
                ErrorCode.INVALID_FIELD, f"{n} values (one per entry of t)", _values(column, n)
            ).at(name)


def _vector(group: dict[str, Any], field: str, n: int, names: str = "xyz") -> None:
    try:
        _columns(group[field], n, tuple(names))
    except FieldError as exc:
        raise exc.at(field) from None


def _check_joints(joints: dict[str, Any], n: int) -> None:
    angle = joints["angle"]
    if type(angle) is bytes:
        dof = len(joints["names"]) or packed.count(angle) // n
        if dof < 1:
            raise _invalid("angle", f"at least one joint per row: {n} rows x dof packed values",
                           _values(angle))
    else:
        if len(angle) != n:
            raise FieldError(
                ErrorCode.INVALID_FIELD, f"{n} rows (one per entry of t)", f"{len(angle)} rows"
            ).at("angle")
        dof = len(joints["names"]) or packed.count(angle[0])
        if dof < 1:
            raise _invalid("angle", "at least one joint per row", angle[0])
    for field in ("angle", "velocity", "torque"):
        rows = joints[field]
        if not rows and field != "angle":
            continue  # not measured
        if type(rows) is bytes:
            if packed.count(rows) != n * dof:
                raise FieldError(
                    ErrorCode.INVALID_FIELD, f"{n} rows x {dof} joints = {n * dof} packed values",
                    _values(rows),
                ).at(field)
            continue
        if len(rows) != n:
            raise FieldError(ErrorCode.INVALID_FIELD, f"{n} rows", f"{len(rows)} rows").at(field)
        for i, row in enumerate(rows):
            if packed.count(row) != dof:
                raise FieldError(
                    ErrorCode.INVALID_FIELD, f"{dof} values (one per joint)", _values(row)
                ).at(f"[{i}]").at(field)


def _check_group(payload: dict[str, Any], field: str, fn: Callable[[dict[str, Any]], None]) -> None:
    group = payload[field]
    if group is None:
        return
    try:
        fn(group)
    except FieldError as exc:
        raise exc.at(field) from None


def _time_series_check(payload: dict[str, Any], deep: bool) -> None:
    n = packed.count(payload["t"])
    if n < 1:
        raise _invalid("t", "at least one sample time", payload["t"])
    _check_group(payload, "pose", lambda g: _check_pose(g, n))
    _check_group(payload, "joints", lambda g: _check_joints(g, n))
    _check_group(payload, "force_torque", lambda g: _check_force_torque(g, n))
    _check_group(payload, "imu", lambda g: _check_imu(g, n))
    _check_group(payload, "metrics", lambda g: _columns(g, n, packed.METRIC_COLUMNS))
    _check_channels(payload, n)
    if deep:
        _check_packed_finite(payload)


def _check_packed_finite(payload: dict[str, Any]) -> None:
    """Packed columns follow the NaN policy of lists: NaN is a missing sample, no infinities."""
    found = packed.first_infinity(payload)
    if found is None:
        return
    path, index, value = found
    error = FieldError(ErrorCode.NON_FINITE, "a finite number or NaN/null (missing sample)", describe(value))
    if path.startswith("joints.") and "[" not in path:  # a row-major block: name row and joint
        dof = packed.count(payload["joints"][path[7:]]) // packed.count(payload["t"])
        error = error.at(f"[{index % dof}]").at(f"[{index // dof}]")
    else:
        error = error.at(f"[{index}]")
    for part in reversed(path.replace("[", ".[").split(".")):
        error = error.at(part)
    raise error


def _check_pose(pose: dict[str, Any], n: int) -> None:
    _vector(pose, "position", n)
    _vector(pose, "orientation", n, "xyzw")


def _check_force_torque(group: dict[str, Any], n: int) -> None:
    _vector(group, "force", n)
    _vector(group, "torque", n)


def _check_imu(imu: dict[str, Any], n: int) -> None:
    _vector(imu, "linear_acceleration", n)
    _vector(imu, "angular_velocity", n)
    if imu["orientation"] is not None:
        _vector(imu, "orientation", n, "xyzw")


def _check_channels(payload: dict[str, Any], n: int) -> None:
    channels = payload["channels"]
    for name in channels:
        if not CHANNEL_RE.fullmatch(name):
            raise _invalid(
                name, "a channel name: 1-64 characters of [A-Za-z0-9_], not starting with a digit",
                name,
            ).at("channels")
    try:
        _columns(channels, n, tuple(channels))
    except FieldError as exc:
        raise exc.at("channels") from None
    for name in payload["units"]:
        if name not in channels:
            raise _invalid(name, "the name of a channel in channels", name).at("units")


# -- parameters --------------------------------------------------------------------------------


def _flatten(values: dict[Any, Any], prefix: str, out: dict[str, Any], depth: int) -> None:
    if depth > MAX_PARAMETER_DEPTH:
        raise _invalid(prefix, f"at most {MAX_PARAMETER_DEPTH} levels of nesting", "deeper")
    for key, value in values.items():
        if type(key) is not str:
            raise _invalid(prefix or "<key>", "string keys", key)
        name = f"{prefix}.{key}" if prefix else key
        if type(value) is dict:
            _flatten(value, name, out, depth + 1)
        elif name in out:
            raise _invalid(name, "each flattened name once", name, "duplicate parameter name")
        else:
            out[name] = value


def _prepare_parameters(payload: Any, json_mode: bool) -> Any:
    if type(payload) is not dict or type(payload.get("values")) is not dict:
        return payload
    values = payload["values"]
    if not any(type(v) is dict for v in values.values()):
        return payload
    flat: dict[str, Any] = {}
    try:
        _flatten(values, "", flat, 0)
    except FieldError as exc:
        raise exc.at("values") from None
    return {**payload, "values": flat}


def _parameters_check(payload: dict[str, Any], deep: bool) -> None:
    for name in payload["values"]:
        if not 1 <= len(name) <= MAX_PARAMETER_NAME or _CONTROL_RE.search(name):
            raise _invalid(
                name, f"a name of 1-{MAX_PARAMETER_NAME} characters without control characters", name
            ).at("values")


# -- documents ---------------------------------------------------------------------------------


def _document_check(parse: Callable[[str], Any] | None, what: str) -> Check:
    def check(payload: dict[str, Any], deep: bool) -> None:
        check_filename(payload["name"])
        if not deep or parse is None:
            return
        try:
            parse(payload["text"])
        except Exception as exc:
            raise _invalid(
                "text", f"valid {what} text", payload["text"], f"not {what}: {exc}"[:200]
            ) from None

    return check


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader


def _parse_csv(text: str, delimiter: str) -> None:
    for _row in csv.reader(io.StringIO(text), delimiter=delimiter, strict=True):
        pass


def _csv_check(payload: dict[str, Any], deep: bool) -> None:
    check_filename(payload["name"])
    delimiter = payload["delimiter"]
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        raise _invalid("delimiter", "one character, not a quote or a line break", delimiter)
    if deep:
        _document_check(lambda text: _parse_csv(text, delimiter), "CSV")(payload, deep)


# -- vuer --------------------------------------------------------------------------------------


def _prepare_vuer(payload: Any, json_mode: bool) -> Any:
    """A structured body (map/list instead of bytes) is checked and packed to MessagePack."""
    if type(payload) is not dict or "data" not in payload:
        return payload
    body = payload["data"]
    if body is None or isinstance(body, bytes | bytearray | memoryview | str | int | float | bool):
        return payload
    try:
        tree = decode_tree(body, json_mode=json_mode)
    except FieldError as exc:
        raise exc.at("data") from None
    except RecursionError:
        raise _invalid("data", "a shallower message", "too deep") from None
    return {**payload, "data": encode_vuer(tree)}


def _vuer_check(payload: dict[str, Any], deep: bool) -> None:
    if not 1 <= len(payload["etype"]) <= 256:
        raise _invalid("etype", "a vuer event type of 1-256 characters", payload["etype"])
    if not deep:
        return
    try:
        tree = msgpack.unpackb(payload["data"], raw=False, strict_map_key=False)
    except Exception as exc:
        raise FieldError(
            ErrorCode.INVALID_FIELD, "a MessagePack document", describe(payload["data"]),
            f"not MessagePack: {type(exc).__name__}",
        ).at("data") from None
    try:
        decode_tree(tree)
    except FieldError as exc:
        raise exc.at("data") from None
    except RecursionError:
        raise _invalid("data", "a shallower message", "too deep") from None


# -- registry of rules -------------------------------------------------------------------------

RULES: dict[DataType, PayloadRules] = {
    DataType.TIME_SERIES: PayloadRules(allow_nan=True, check=_time_series_check),
    DataType.PARAMETERS: PayloadRules(prepare=_prepare_parameters, check=_parameters_check),
    DataType.IMAGES: PayloadRules(prepare=_prepare_blob, check=_camera_check(lambda p: None)),
    DataType.VIDEO: PayloadRules(prepare=_prepare_blob, check=_camera_check(_video_extra)),
    DataType.AUDIO: PayloadRules(prepare=_prepare_blob, check=_audio_check),
    DataType.LOG: PayloadRules(),
    DataType.MARKDOWN: PayloadRules(check=_document_check(None, "Markdown")),
    DataType.FILE: PayloadRules(prepare=_prepare_blob, check=_binary_check()),
    DataType.CSV: PayloadRules(check=_csv_check),
    DataType.SAFETENSORS: PayloadRules(prepare=_prepare_blob, check=_binary_check()),
    DataType.JSON: PayloadRules(check=_document_check(orjson.loads, "JSON")),
    DataType.YAML: PayloadRules(check=_document_check(_load_yaml, "YAML")),
    DataType.TOML: PayloadRules(check=_document_check(tomllib.loads, "TOML")),
    DataType.MSGPACK: PayloadRules(prepare=_prepare_blob, check=_binary_check()),
    DataType.VUER_MSG: PayloadRules(prepare=_prepare_vuer, check=_vuer_check),
    DataType.ZIP: PayloadRules(prepare=_prepare_blob, check=_binary_check()),
    DataType.TAR: PayloadRules(prepare=_prepare_blob, check=_binary_check()),
}
assert set(RULES) == set(DataType)
assert all(RULES[dt].prepare is _prepare_blob for dt in BINARY_TYPES)


@cache
def payload_validator(data_type: DataType, json_mode: bool) -> Validator:
    """The compiled schema check of a data type's payload (cached)."""
    return compile_validator(
        catalog.payload_schema(data_type),
        json_mode=json_mode,
        allow_nan=RULES[data_type].allow_nan,
        namespace=catalog.NAMESPACE,
        packed=data_type is DataType.TIME_SERIES and not json_mode,
    )


def validate_payload(data_type: DataType, payload: Any, *, json_mode: bool = False) -> dict[str, Any]:
    """Check and normalise a payload as it came off the wire; return the Avro-shaped payload.

    Raises :class:`~robostream.schemas.validation.FieldError` with a path relative to the
    payload (the envelope decoder adds ``payload.`` and the envelope context).
    """
    rules = RULES[data_type]
    if rules.prepare is not None:
        payload = rules.prepare(payload, json_mode)
    out: dict[str, Any] = payload_validator(data_type, json_mode)(payload)
    if rules.check is not None:
        rules.check(out, True)
    return out


def check_decoded_payload(data_type: DataType, payload: dict[str, Any]) -> None:
    """Cheap checks on a payload read back from Kafka: ids, names, lengths (no hashing/parsing)."""
    rules = RULES[data_type]
    if rules.check is not None:
        rules.check(payload, False)
