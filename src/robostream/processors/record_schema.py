"""The derived records' one source: their ``.avsc`` files, and dataclasses checked against them.

Each derived record's schema lives in ``robostream/schemas/avro/derived/<Name>.avsc`` (nested
records inline, as registered). A dataclass deriving from :class:`AvroRecord` names its record
with ``SCHEMA``; :func:`check_fields` refuses a dataclass whose fields are not the record's
(names and nullability), and ``to_avro`` / ``from_avro`` are derived from the schema and the
field types, so no field is written a second time by hand.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from importlib import resources
from typing import Any, ClassVar, Self

from robostream.errors import RobostreamError

Convert = Callable[[Any], Any]


class RecordSchemaError(RobostreamError, TypeError):
    """A derived record's dataclass and its ``.avsc`` schema disagree."""


def load_schema(name: str) -> dict[str, Any]:
    """The Avro schema of the derived record ``name`` (``schemas/avro/derived/<name>.avsc``)."""
    # by path from the top package: importing robostream.schemas would load the codec and the settings
    path = resources.files("robostream").joinpath("schemas").joinpath("avro").joinpath("derived")
    loaded: dict[str, Any] = json.loads(path.joinpath(f"{name}.avsc").read_text("utf-8"))
    return loaded


def named_records(schema: Any) -> Iterator[dict[str, Any]]:
    """Every record schema defined in ``schema`` (itself first, then nested ones, depth first)."""
    if isinstance(schema, list):
        for branch in schema:
            yield from named_records(branch)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            yield schema
            for f in schema["fields"]:
                yield from named_records(f["type"])
        else:
            yield from named_records(schema.get("items"))
            yield from named_records(schema.get("values"))


def nested_schema(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The record ``name`` defined inside ``schema``."""
    for record in named_records(schema):
        if record["name"] == name:
            return record
    raise RecordSchemaError(f"no record named {name!r} in the schema of {schema['name']}")


class AvroRecord:
    """A frozen dataclass whose fields are those of the Avro record ``SCHEMA``."""

    __slots__ = ()
    SCHEMA: ClassVar[dict[str, Any]]

    def to_avro(self) -> dict[str, Any]:
        """The datum fastavro writes."""
        return {name: value if convert is None else convert(value)
                for name, convert, value in _writer(type(self), self)}

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> Self:
        """The record from a datum fastavro read (with this schema as the reader schema)."""
        readers = _readers(cls)
        if not readers:
            return cls(**datum)
        return cls(**{k: v if (f := readers.get(k)) is None else f(v) for k, v in datum.items()})


_CLASSES: dict[str, type[AvroRecord]] = {}


def register(*classes: type[AvroRecord]) -> None:
    """Check each class against its schema (see :func:`check_fields`) and make it the Python
    type of its record name (for nested records)."""
    for cls in classes:
        _CLASSES[cls.SCHEMA["name"]] = cls
    for cls in classes:
        check_fields(cls)


def _hints(cls: type[AvroRecord]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _admits_none(hint: Any) -> bool:
    return hint is type(None) or (
        typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
    )


def _enum_of(hint: Any) -> type[Enum] | None:
    return hint if isinstance(hint, type) and issubclass(hint, Enum) else None


def check_fields(cls: type[AvroRecord]) -> None:
    """Raise :class:`RecordSchemaError` unless ``cls``'s dataclass fields are its schema's: the
    same names, nullable exactly where the schema is, nested records registered."""
    schema = cls.SCHEMA
    ours = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    theirs = {f["name"]: f["type"] for f in schema["fields"]}
    where = f"{cls.__name__} and schemas/avro/derived ({schema['name']})"
    if ours != set(theirs):
        raise RecordSchemaError(
            f"{where} disagree: only in the dataclass: {sorted(ours - set(theirs))}; "
            f"only in the schema: {sorted(set(theirs) - ours)}"
        )
    hints = _hints(cls)
    for name, avro_type in theirs.items():
        nullable = isinstance(avro_type, list) and "null" in avro_type
        if nullable != _admits_none(hints[name]):
            raise RecordSchemaError(f"{where} disagree on whether {name!r} may be null")
        for record in named_records(avro_type):
            if record["name"] not in _CLASSES:
                raise RecordSchemaError(f"{where}: no dataclass for the nested record {record['name']}")


def _to_avro(avro_type: Any) -> Convert | None:
    """How a field value becomes its Avro datum (``None``: as it is)."""
    if isinstance(avro_type, list):
        branches = [_to_avro(b) for b in avro_type if b != "null"]
        one = branches[0] if len(branches) == 1 else None
        return None if one is None else (lambda v: None if v is None else one(v))
    if isinstance(avro_type, str):
        return {"long": int, "int": int, "double": float}.get(avro_type)
    kind = avro_type["type"]
    if kind == "record":
        return _CLASSES[avro_type["name"]].to_avro
    if kind == "array":
        item = _to_avro(avro_type["items"])
        return list if item is None else (lambda v: [item(x) for x in v])
    if kind == "map":
        value = _to_avro(avro_type["values"])
        return dict if value is None else (lambda v: {k: value(x) for k, x in v.items()})
    return None


def _from_avro(avro_type: Any) -> Convert | None:
    """How an Avro datum becomes the field value (``None``: as it is)."""
    if isinstance(avro_type, dict):
        if avro_type["type"] == "record":
            return _CLASSES[avro_type["name"]].from_avro
        if avro_type["type"] == "array":
            item = _from_avro(avro_type["items"])
            return None if item is None else (lambda v: [item(x) for x in v])
    return None


_WRITERS: dict[type[AvroRecord], tuple[tuple[str, Convert | None], ...]] = {}
_READERS: dict[type[AvroRecord], dict[str, Convert]] = {}


def _writers(cls: type[AvroRecord]) -> tuple[tuple[str, Convert | None], ...]:
    found = _WRITERS.get(cls)
    if found is None:
        hints = _hints(cls)
        found = _WRITERS[cls] = tuple(
            (f["name"], _enum_value if _enum_of(hints[f["name"]]) else _to_avro(f["type"]))
            for f in cls.SCHEMA["fields"]
        )
    return found


def _enum_value(member: Enum) -> Any:
    return member.value


def _writer(cls: type[AvroRecord], record: AvroRecord) -> Iterator[tuple[str, Convert | None, Any]]:
    for name, convert in _writers(cls):
        yield name, convert, getattr(record, name)


def _readers(cls: type[AvroRecord]) -> dict[str, Convert]:
    found = _READERS.get(cls)
    if found is None:
        hints = _hints(cls)
        found = _READERS[cls] = {}
        for f in cls.SCHEMA["fields"]:
            convert = _enum_of(hints[f["name"]]) or _from_avro(f["type"])
            if convert is not None:
                found[f["name"]] = convert
    return found
