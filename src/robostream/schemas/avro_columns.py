"""An Avro binary writer for columnar records, where a packed column is copied, not converted.

Avro encodes an ``array<double>`` as a block count, the values as little-endian float64 and a
zero; a packed column (:mod:`robostream.schemas.packed`) is exactly those values, so the writer
copies its bytes. List columns are packed with one ``struct.pack`` call each. The output is
byte-for-byte what ``fastavro.schemaless_writer`` writes for the list form of the same datum
(one block per array or map, as fastavro does): a property test holds the two together, and
every reader (fastavro, Confluent's deserializer, the processors' column reader) reads it.

It compiles the subset of Avro the ``time_series`` schema uses: records, ``long`` (and
``timestamp-micros`` as integer microseconds), ``double``, ``string``, arrays, maps and
``["null", <record>]`` unions. :func:`compile_writer` raises ``NotImplementedError`` for anything
else, so a schema that outgrows it fails at start-up, not on a record.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

Writer = Callable[[Any, list[bytes]], None]

_SMALL = [bytes([n << 1]) for n in range(64)]  # zigzag of 0..63: one byte each
_ZERO = b"\x00"
_NULL_BRANCH = b"\x00"
_SECOND_BRANCH = b"\x02"  # zigzag(1)
_DOUBLE = struct.Struct("<d")
_T_CACHE: dict[bytes, bytes] = {}
_T_CACHE_MAX = 4096


def write_long(n: int) -> bytes:
    """An Avro ``long``: zigzag, then base-128 varint."""
    if 0 <= n < 64:
        return _SMALL[n]
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_STRINGS: dict[str, bytes] = {}
_STRINGS_MAX = 4096


def string_bytes(value: str) -> bytes:
    """An Avro ``string``: its length, then UTF-8 (cached: ids, channel and joint names repeat
    from record to record)."""
    encoded = _STRINGS.get(value)
    if encoded is None:
        data = value.encode()
        encoded = write_long(len(data)) + data
        if len(data) <= 64:
            if len(_STRINGS) >= _STRINGS_MAX:
                _STRINGS.clear()
            _STRINGS[value] = encoded
    return encoded


def _write_string(value: str, out: list[bytes]) -> None:
    out.append(string_bytes(value))


def _write_long(value: int, out: list[bytes]) -> None:
    out.append(write_long(value))


def _write_double(value: float, out: list[bytes]) -> None:
    out.append(_DOUBLE.pack(value))


def _write_doubles(value: Any, out: list[bytes]) -> None:
    if type(value) is bytes:
        if value:
            out.append(write_long(len(value) >> 3))
            out.append(value)
    elif value:
        out.append(write_long(len(value)))
        out.append(struct.pack(f"<{len(value)}d", *value))
    out.append(_ZERO)


def packed_longs_bytes(value: bytes) -> bytes:
    """The Avro ``array<long>`` block of packed int64 values, without its closing zero (cached:
    sample offsets repeat from record to record)."""
    cached = _T_CACHE.get(value)
    if cached is None:
        items = np.frombuffer(value, dtype="<i8").tolist()
        cached = b"".join([write_long(len(items)), *map(write_long, items)]) if items else b""
        if len(_T_CACHE) >= _T_CACHE_MAX:
            _T_CACHE.clear()
        _T_CACHE[value] = cached
    return cached


def _write_longs(value: Any, out: list[bytes]) -> None:
    if type(value) is bytes:
        out.append(packed_longs_bytes(value))
    elif value:
        out.append(write_long(len(value)))
        out.extend(map(write_long, value))
    out.append(_ZERO)


def _write_matrix(rows: list[Any], out: list[bytes]) -> None:
    """Rows of doubles; packed rows of one width go out in one join."""
    if rows:
        out.append(write_long(len(rows)))
        first = rows[0]
        if type(first) is bytes and first and all(type(r) is bytes and len(r) == len(first) for r in rows):
            prefix = write_long(len(first) >> 3)
            out.append(prefix + (_ZERO + prefix).join(rows) + _ZERO)
        else:
            for row in rows:
                _write_doubles(row, out)
    out.append(_ZERO)


_PRIMITIVES: dict[str, Writer] = {"long": _write_long, "double": _write_double, "string": _write_string}


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, Writer] = {}

    def compile(self, schema: Any, namespace: str) -> Writer:
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            full = schema if "." in schema else f"{namespace}.{schema}"
            if full in self.named:
                return self.named[full]
            raise NotImplementedError(f"Avro type {schema!r} is not supported by the column writer")
        kind = schema["type"]
        if isinstance(kind, dict | list):
            return self.compile(kind, namespace)
        if kind == "record":
            return self._record(schema, namespace)
        if kind == "array":
            return self._array(schema["items"], namespace)
        if kind == "map":
            return self._map(schema["values"], namespace)
        if kind in _PRIMITIVES:  # incl. long with logicalType timestamp-micros (integer µs)
            return _PRIMITIVES[kind]
        raise NotImplementedError(f"Avro type {kind!r} is not supported by the column writer")

    def _record(self, schema: dict[str, Any], namespace: str) -> Writer:
        name = str(schema["name"])
        full = name if "." in name else f"{schema.get('namespace', namespace)}.{name}"
        inner_ns = full.rsplit(".", 1)[0]
        fields = [(f["name"], self.compile(f["type"], inner_ns)) for f in schema["fields"]]

        def write(value: dict[str, Any], out: list[bytes]) -> None:
            for field, fn in fields:
                fn(value[field], out)

        self.named[full] = write
        return write

    def _array(self, items: Any, namespace: str) -> Writer:
        if items == "double":
            return _write_doubles
        if items == "long":
            return _write_longs
        if isinstance(items, dict) and items.get("type") == "array" and items.get("items") == "double":
            return _write_matrix
        item = self.compile(items, namespace)

        def write(value: list[Any], out: list[bytes]) -> None:
            if value:
                out.append(write_long(len(value)))
                for element in value:
                    item(element, out)
            out.append(_ZERO)

        return write

    def _map(self, values: Any, namespace: str) -> Writer:
        item = self.compile(values, namespace)

        def write(value: dict[str, Any], out: list[bytes]) -> None:
            if value:
                out.append(write_long(len(value)))
                for key, element in value.items():
                    _write_string(key, out)
                    item(element, out)
            out.append(_ZERO)

        return write

    def _union(self, branches: list[Any], namespace: str) -> Writer:
        if len(branches) != 2 or branches[0] != "null":
            raise NotImplementedError("only [\"null\", <type>] unions are supported by the column writer")
        other = self.compile(branches[1], namespace)

        def write(value: Any, out: list[bytes]) -> None:
            if value is None:
                out.append(_NULL_BRANCH)
            else:
                out.append(_SECOND_BRANCH)
                other(value, out)

        return write


def compile_writer(schema: Any, namespace: str = "") -> Callable[[Any], bytes]:
    """An Avro binary encoder of ``schema`` (JSON form) that copies packed columns.

    The datum is Avro-shaped (as the contract's validation returns it), with any numeric array
    as a list or as packed little-endian bytes. Raises ``NotImplementedError`` for a schema
    using a type outside the supported subset.
    """
    write = _Compiler().compile(schema, namespace)

    def encode(datum: Any) -> bytes:
        out: list[bytes] = []
        write(datum, out)
        return b"".join(out)

    return encode
