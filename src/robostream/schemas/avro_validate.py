"""Schema-driven validation: an Avro schema compiled into a function that checks and normalises.

The compiled function takes what came off the wire (decoded JSON or MessagePack) and returns
the Avro datum (a new dict in field order, defaults filled in) or raises
:class:`~robostream.schemas.validation.FieldError` naming the field path, the expected type and
what came. It is compiled once per schema and mode, and costs nothing extra on the success path.

Rules beyond plain Avro typing:

* ``bool`` is never an integer or a number; integers are accepted where a double is expected.
* Doubles must be finite unless ``allow_nan``: then NaN (JSON ``null``) marks a missing value,
  infinities are still rejected.
* In ``json_mode`` a ``bytes`` field takes base64 text (RFC 4648, padded).
* Records reject unknown fields (``unknown_field``) and fill defaults for absent ones.
* With ``packed`` (MessagePack time_series columns), an array of doubles or longs, and an array
  of arrays of doubles (a matrix, row-major), may also come as ``bytes`` of little-endian
  float64 / int64 values: only the length (a multiple of 8) is checked here, and the bytes are
  kept as they are (see :mod:`robostream.schemas.packed`; the payload's own check does the rest).
"""

from __future__ import annotations

import binascii
import copy
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from robostream.schemas.validation import ErrorCode, FieldError, describe
from robostream.times import datetime_to_us

Validator = Callable[[Any], Any]

_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_NAN = float("nan")
_FLOAT_ONLY = frozenset({float})


def _fail(expected: str, value: Any, code: ErrorCode = ErrorCode.INVALID_FIELD) -> FieldError:
    return FieldError(code, expected, describe(value))


def b64decode_field(text: str) -> bytes:
    """Decode base64 text of a ``bytes`` field in JSON input, or raise ``invalid_field``."""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise FieldError(
            ErrorCode.INVALID_FIELD, "base64 text (RFC 4648, padded)", describe(text)
        ) from None


class _Compiler:
    def __init__(self, *, json_mode: bool, allow_nan: bool, packed: bool = False) -> None:
        self.json_mode = json_mode
        self.allow_nan = allow_nan
        self.packed = packed
        self.named: dict[str, Validator] = {}
        self.named_expected: dict[str, str] = {}

    # -- dispatch ------------------------------------------------------------------------
    def compile(self, schema: Any, namespace: str) -> Validator:
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if isinstance(schema, str):
            return self._named_or_primitive(schema, namespace)
        kind = schema["type"]
        if isinstance(kind, dict | list):
            return self.compile(kind, namespace)
        if kind == "record":
            return self._record(schema, namespace)
        if kind == "enum":
            return self._enum(schema, namespace)
        if kind == "array":
            return self._array(schema["items"], namespace)
        if kind == "map":
            return self._map(schema["values"], namespace)
        if kind == "long" and schema.get("logicalType") == "timestamp-micros":
            return self._timestamp_micros()
        return self._named_or_primitive(kind, namespace)

    def expected(self, schema: Any, namespace: str) -> str:
        """Human description of what a schema accepts."""
        if isinstance(schema, list):
            return " or ".join(self.expected(s, namespace) for s in schema)
        if isinstance(schema, dict):
            kind = schema["type"]
            if isinstance(kind, dict | list):
                return self.expected(kind, namespace)
            if kind == "record":
                return f"an object ({schema['name']})"
            if kind == "enum":
                return "one of " + ", ".join(repr(s) for s in schema["symbols"])
            if kind == "array":
                return f"a list of {self.expected(schema['items'], namespace)}"
            if kind == "map":
                return "an object (string keys)"
            if schema.get("logicalType") == "timestamp-micros":
                return "microseconds since the epoch (integer)"
            return self.expected(kind, namespace)
        return _PRIMITIVE_EXPECTED.get(schema) or self.named_expected.get(
            self._full(schema, namespace), schema
        )

    @staticmethod
    def _full(name: str, namespace: str) -> str:
        return name if "." in name else f"{namespace}.{name}"

    # -- primitives ----------------------------------------------------------------------
    def _named_or_primitive(self, name: str, namespace: str) -> Validator:
        builder = _PRIMITIVES.get(name)
        if builder is not None:
            return builder(self)
        full = self._full(name, namespace)
        if full not in self.named:
            raise KeyError(f"unknown Avro type {name!r}")
        named = self.named
        return lambda value: named[full](value)

    def _null(self) -> Validator:
        def check(value: Any) -> None:
            if value is not None:
                raise _fail("null", value)

        return check

    def _boolean(self) -> Validator:
        def check(value: Any) -> bool:
            if type(value) is not bool:
                raise _fail("true or false", value)
            return value

        return check

    def _integer(self, kind: str) -> Validator:
        low, high = _INT_RANGES[kind]
        expected = f"an integer ({kind}, {low} .. {high})"

        def check(value: Any) -> int:
            if type(value) is not int or not low <= value <= high:
                raise _fail(expected, value)
            return value

        return check

    def _timestamp_micros(self) -> Validator:
        low, high = _INT_RANGES["long"]
        expected = "microseconds since the Unix epoch (integer) or an aware datetime"

        def check(value: Any) -> int:
            if type(value) is int and low <= value <= high:
                return value
            if isinstance(value, datetime) and value.tzinfo is not None:
                return datetime_to_us(value)
            raise _fail(expected, value)

        return check

    def _double(self) -> Validator:
        allow_nan = self.allow_nan

        def check(value: Any) -> float:
            kind = type(value)
            if kind is float:
                if math.isfinite(value):
                    return value
                if allow_nan and value != value:
                    return value
                raise _fail(_finite_expected(allow_nan), value, ErrorCode.NON_FINITE)
            if kind is int:
                try:
                    return float(value)
                except OverflowError:
                    raise _fail("a number within double range", value) from None
            if value is None and allow_nan:
                return _NAN
            raise _fail("a number", value)

        return check

    def _bytes(self) -> Validator:
        json_mode = self.json_mode

        def check(value: Any) -> bytes:
            kind = type(value)
            if kind is bytes:
                return value
            if kind is bytearray or kind is memoryview:
                return bytes(value)
            if json_mode and kind is str:
                return b64decode_field(value)
            raise _fail("base64 text" if json_mode else "bytes (MessagePack bin)", value)

        return check

    def _string(self) -> Validator:
        def check(value: Any) -> str:
            if type(value) is not str:
                raise _fail("a string", value)
            return value

        return check

    # -- complex -------------------------------------------------------------------------
    def _record(self, schema: dict[str, Any], namespace: str) -> Validator:
        full = self._full(schema["name"], schema.get("namespace", namespace))
        inner_ns = full.rsplit(".", 1)[0]
        expected = f"an object ({schema['name']})"
        self.named_expected[full] = expected
        slot: list[Validator] = []
        self.named[full] = lambda value: slot[0](value)
        fields = [self._field(f, inner_ns) for f in schema["fields"]]
        names = frozenset(f[0] for f in fields)

        def check(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _fail(expected, value)
            out: dict[str, Any] = {}
            seen = 0
            for name, fn, has_default, default, field_expected in fields:
                if name in value:
                    seen += 1
                    try:
                        out[name] = fn(value[name])
                    except FieldError as exc:
                        raise exc.at(name) from None
                elif has_default:
                    out[name] = copy.copy(default) if isinstance(default, list | dict) else default
                else:
                    raise FieldError(ErrorCode.MISSING_FIELD, field_expected, "nothing").at(name)
            if seen != len(value):
                extra = next(k for k in value if k not in names)
                raise FieldError(
                    ErrorCode.UNKNOWN_FIELD,
                    "one of the fields " + ", ".join(sorted(names)),
                    describe(extra),
                    f"{schema['name']} has no field {extra!r}",
                ).at(str(extra))
            return out

        slot.append(check)
        return check

    def _field(
        self, field: dict[str, Any], namespace: str
    ) -> tuple[str, Validator, bool, Any, str]:
        fn = self.compile(field["type"], namespace)
        has_default = "default" in field
        default = field.get("default")
        if has_default and default is not None and _is_bytes_type(field["type"]):
            default = default.encode("latin-1")  # Avro JSON default for bytes
        return field["name"], fn, has_default, default, self.expected(field["type"], namespace)

    def _enum(self, schema: dict[str, Any], namespace: str) -> Validator:
        full = self._full(schema["name"], schema.get("namespace", namespace))
        symbols = frozenset(schema["symbols"])
        expected = "one of " + ", ".join(repr(s) for s in schema["symbols"])
        self.named_expected[full] = expected

        def check(value: Any) -> str:
            if type(value) is not str or value not in symbols:
                raise _fail(expected, value)
            return value

        self.named[full] = check
        return check

    def _array(self, items: Any, namespace: str) -> Validator:
        if items == "double":
            return self._double_array()
        if items == "long":
            return self._long_array()
        item = self.compile(items, namespace)
        expected = f"a list of {self.expected(items, namespace)}"
        matrix = self.packed and isinstance(items, dict) and items.get("items") == "double"
        if matrix:
            expected += f", or {_PACKED_EXPECTED['double']} (row-major)"

        def check(value: Any) -> Any:
            if matrix and type(value) is bytes:
                return _packed(value, "double")
            if type(value) is not list and type(value) is not tuple:
                raise _fail(expected, value)
            out = []
            for i, element in enumerate(value):
                try:
                    out.append(item(element))
                except FieldError as exc:
                    raise exc.at(f"[{i}]") from None
            return out

        return check

    def _double_array(self) -> Validator:
        element = self._double()

        def slow(value: Any) -> list[float]:
            out = []
            for i, x in enumerate(value):
                try:
                    out.append(element(x))
                except FieldError as exc:
                    raise exc.at(f"[{i}]") from None
            return out

        packed = self.packed
        expected = f"a list of numbers, or {_PACKED_EXPECTED['double']}" if packed else "a list of numbers"

        def check(value: Any) -> Any:
            if type(value) is not list and type(value) is not tuple:
                if packed and type(value) is bytes:
                    return _packed(value, "double")
                raise _fail(expected, value)
            types = set(map(type, value))
            if types <= _FLOAT_ONLY and math.isfinite(sum(value)):
                return value if type(value) is list else list(value)
            return slow(value)  # converts ints/None, or raises at the first bad element

        return check

    def _long_array(self) -> Validator:
        low, high = _INT_RANGES["long"]
        element = self._integer("long")

        packed = self.packed
        expected = f"a list of integers, or {_PACKED_EXPECTED['long']}" if packed else "a list of integers"

        def check(value: Any) -> Any:
            if type(value) is not list and type(value) is not tuple:
                if packed and type(value) is bytes:
                    return _packed(value, "long")
                raise _fail(expected, value)
            if value and set(map(type, value)) == {int} and min(value) >= low and max(value) <= high:
                return value if type(value) is list else list(value)
            out = []
            for i, x in enumerate(value):
                try:
                    out.append(element(x))
                except FieldError as exc:
                    raise exc.at(f"[{i}]") from None
            return out

        return check

    def _map(self, values: Any, namespace: str) -> Validator:
        item = self.compile(values, namespace)

        def check(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _fail("an object (string keys)", value)
            out = {}
            for key, element in value.items():
                if type(key) is not str:
                    raise _fail("string keys", key).at("<key>")
                try:
                    out[key] = item(element)
                except FieldError as exc:
                    raise exc.at(key) from None
            return out

        return check

    def _union(self, branches: list[Any], namespace: str) -> Validator:
        table: dict[type, list[Validator]] = {}
        for branch in branches:
            fn = self.compile(branch, namespace)
            for py_type in self._python_types(branch, namespace, branches):
                table.setdefault(py_type, []).append(fn)
        expected = self.expected(branches, namespace)
        allow_nan = self.allow_nan

        def check(value: Any) -> Any:
            candidates = table.get(type(value))
            if not candidates:
                if value is None and allow_nan and float in table:
                    return _NAN
                raise _fail(expected, value)
            if len(candidates) == 1:
                return candidates[0](value)
            first: FieldError | None = None
            for fn in candidates:
                try:
                    return fn(value)
                except FieldError as exc:
                    first = first or exc
            assert first is not None
            raise first

        return check

    def _python_types(self, branch: Any, namespace: str, branches: list[Any]) -> list[type]:
        kind = _kind(branch)
        if kind in self.named or self._full(kind, namespace) in self.named:
            full = kind if kind in self.named else self._full(kind, namespace)
            expected = self.named_expected.get(full, "")
            kind = "enum" if expected.startswith("one of") else "record"
        has_long = any(_kind(b) in ("int", "long") for b in branches)
        byte_types: list[type] = [bytes, bytearray, memoryview]
        if self.json_mode:
            byte_types.append(str)
        mapping: dict[str, list[type]] = {
            "null": [type(None)],
            "boolean": [bool],
            "int": [int],
            "long": [int, datetime] if isinstance(branch, dict) else [int],
            "float": [float] if has_long else [float, int],
            "double": [float] if has_long else [float, int],
            "bytes": byte_types,
            "string": [str],
            "enum": [str],
            "record": [dict],
            "map": [dict],
            "array": [list, tuple],
        }
        return mapping.get(kind, [])


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        kind = schema["type"]
        return kind if isinstance(kind, str) else _kind(kind)
    return "union"


def _is_bytes_type(schema: Any) -> bool:
    return _kind(schema) == "bytes" or (isinstance(schema, list) and _kind(schema[0]) == "bytes")


_PACKED_EXPECTED = {
    "double": "packed little-endian float64 (MessagePack bin, 8 bytes per value)",
    "long": "packed little-endian int64 (MessagePack bin, 8 bytes per value)",
}


def _packed(value: bytes, kind: str) -> bytes:
    if len(value) % 8:
        raise FieldError(ErrorCode.INVALID_FIELD, _PACKED_EXPECTED[kind], f"{len(value)} bytes (truncated?)")
    return value


def _finite_expected(allow_nan: bool) -> str:
    return "a finite number or NaN/null (missing sample)" if allow_nan else "a finite number"


_PRIMITIVE_EXPECTED = {
    "null": "null",
    "boolean": "true or false",
    "int": "an integer (int)",
    "long": "an integer (long)",
    "float": "a number",
    "double": "a number",
    "bytes": "bytes",
    "string": "a string",
}
_PRIMITIVES: dict[str, Callable[[_Compiler], Validator]] = {
    "null": _Compiler._null,
    "boolean": _Compiler._boolean,
    "int": lambda c: c._integer("int"),
    "long": lambda c: c._integer("long"),
    "float": _Compiler._double,
    "double": _Compiler._double,
    "bytes": _Compiler._bytes,
    "string": _Compiler._string,
}


def compile_validator(
    schema: Any, *, json_mode: bool = False, allow_nan: bool = False, namespace: str = "",
    packed: bool = False,
) -> Validator:
    """Compile an Avro schema (JSON form, self-contained) into a validating normaliser.

    Args:
        schema: the schema, as loaded from an ``.avsc`` (named types defined before use).
        json_mode: accept base64 text for ``bytes`` (decoded JSON input).
        allow_nan: doubles may be NaN (or ``null``, read as NaN); infinities stay forbidden.
        namespace: enclosing namespace for unqualified names.
        packed: numeric arrays may come as packed little-endian bytes (kept as ``bytes``).
    """
    return _Compiler(json_mode=json_mode, allow_nan=allow_nan, packed=packed).compile(schema, namespace)
