"""Schema compatibility levels and checks, on top of Apache Avro's reader/writer checker.

BACKWARD: consumers on the new schema read data written with the old one (new = reader).
FORWARD: consumers on the old schema read data written with the new one (old = reader).
FULL: both. ``*_TRANSITIVE``: against every earlier version, not only the latest. NONE: no check.

Avro's checker takes any default as good enough for a reader field the writer lacks; a default
that is not a value of the field's type (``"type": "int", "default": null``, the usual slip when
making a field optional) cannot fill it in: fastavro refuses such a reader schema, so every
consumer on it would fail. Such a field counts as having no default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
    incompatible,
    lookup_writer_field,
    merge,
)

from robostream.schemas.registry.errors import invalid_compatibility_level


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels; BACKWARD is the default."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def parse(cls, value: object) -> CompatibilityLevel:
        """Case-insensitive parse; raises the registry's 42203 error for anything else."""
        if isinstance(value, str):
            try:
                return cls(value.strip().upper())
            except ValueError:
                pass
        raise invalid_compatibility_level()

    @property
    def transitive(self) -> bool:
        return self.name.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """The new schema must read data written with the old one(s)."""
        return self.name.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """The old schema(s) must read data written with the new one."""
        return self.name.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader cannot read a writer's data, phrased like Confluent's details."""

    error_type: str
    description: str
    additional_info: str

    def render(self) -> str:
        """Confluent's ``{errorType:'…', description:'…', additionalInfo:'…'}`` form."""
        return (
            f"{{errorType:'{self.error_type}', description:'{self.description}', "
            f"additionalInfo:'{self.additional_info}'}}"
        )


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a new schema against earlier versions."""

    incompatibilities: list[Incompatibility] = field(default_factory=list)
    #: index into ``previous`` of the first version found incompatible (newest first)
    failing_index: int | None = None

    @property
    def compatible(self) -> bool:
        return not self.incompatibilities


def check_compatibility(
    new: avro.schema.Schema,
    previous: Sequence[avro.schema.Schema],
    level: CompatibilityLevel,
) -> Verdict:
    """Check ``new`` against ``previous`` (oldest first) under ``level``.

    Non-transitive levels look at the latest previous schema only; transitive ones at all of
    them, newest first, stopping at the first incompatible one (like Confluent).
    """
    if level is CompatibilityLevel.NONE or not previous:
        return Verdict()
    candidates = range(len(previous) - 1, -1, -1) if level.transitive else [len(previous) - 1]
    for index in candidates:
        issues = check_pair(new, previous[index], level)
        if issues:
            return Verdict(incompatibilities=issues, failing_index=index)
    return Verdict()


def check_pair(
    new: avro.schema.Schema, old: avro.schema.Schema, level: CompatibilityLevel
) -> list[Incompatibility]:
    """Incompatibilities between one new and one old schema under ``level``'s direction(s)."""
    issues: list[Incompatibility] = []
    if level.backward:
        issues += reader_writer_issues(reader=new, writer=old, reader_is_new=True)
    if level.forward:
        issues += reader_writer_issues(reader=old, writer=new, reader_is_new=False)
    return issues


def reader_writer_issues(
    reader: avro.schema.Schema, writer: avro.schema.Schema, reader_is_new: bool
) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer`` (empty if it can)."""
    result = _Checker().get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    return _describe(result, reader_is_new)


class _Checker(ReaderWriterCompatibilityChecker):
    """Avro's checker, with a reader field's default required to be a value of its type."""

    def check_reader_writer_record_fields(
        self, reader: avro.schema.RecordSchema, writer: avro.schema.RecordSchema, location: list[str]
    ) -> SchemaCompatibilityResult:
        result: SchemaCompatibilityResult = super().check_reader_writer_record_fields(
            reader, writer, location
        )
        for index, reader_field in enumerate(reader.fields):
            if (
                reader_field.has_default
                and lookup_writer_field(writer_schema=writer, reader_field=reader_field) is None
                and not is_valid_default(reader_field.type, reader_field.default)
            ):
                result = merge(
                    result,
                    incompatible(
                        SchemaIncompatibilityType.reader_field_missing_default_value,
                        reader_field.name,
                        [*location, "fields", str(index)],
                    ),
                )
        return result


_INT_RANGE = {"int": 1 << 31, "long": 1 << 63}


def is_valid_default(schema: avro.schema.Schema, value: Any) -> bool:
    """Whether ``value`` (a field default, as JSON) is a value of ``schema``.

    A union's default may match any branch (what fastavro and Avro 1.12 accept).
    """
    kind = schema.type
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _INT_RANGE:
        bound = _INT_RANGE[kind]
        return isinstance(value, int) and not isinstance(value, bool) and -bound <= value < bound
    if kind in ("float", "double"):
        if isinstance(value, str):
            return value in ("NaN", "Infinity", "-Infinity")
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("string", "bytes"):
        return isinstance(value, str)
    if isinstance(schema, avro.schema.FixedSchema):
        return isinstance(value, str) and len(value) == schema.size
    if isinstance(schema, avro.schema.EnumSchema):
        return isinstance(value, str) and value in schema.symbols
    if isinstance(schema, avro.schema.ArraySchema):
        return isinstance(value, list) and all(is_valid_default(schema.items, item) for item in value)
    if isinstance(schema, avro.schema.MapSchema):
        return isinstance(value, dict) and all(is_valid_default(schema.values, v) for v in value.values())
    if isinstance(schema, avro.schema.UnionSchema):
        return any(is_valid_default(branch, value) for branch in schema.schemas)
    if isinstance(schema, avro.schema.RecordSchema):
        if not isinstance(value, dict):
            return False
        return all(
            is_valid_default(f.type, value[f.name]) if f.name in value else f.has_default
            for f in schema.fields
        )
    return False


def _describe(result: SchemaCompatibilityResult, reader_is_new: bool) -> list[Incompatibility]:
    # avro's result keeps the kinds in order but messages/locations as sets; with a single
    # incompatibility they pair exactly, with several each entry lists every location.
    kinds = list(dict.fromkeys(result.incompatibilities))
    location = ", ".join(sorted(result.locations))
    info = ", ".join(sorted(result.messages))
    return [_phrase(kind, location, info, reader_is_new) for kind in kinds]


def _phrase(
    kind: SchemaIncompatibilityType, location: str, info: str, reader_is_new: bool
) -> Incompatibility:
    reader, writer = ("new", "old") if reader_is_new else ("old", "new")
    descriptions = {
        SchemaIncompatibilityType.reader_field_missing_default_value: (
            f"The field '{info}' at path '{location}' in the {reader} schema has no default "
            f"value and is missing in the {writer} schema"
        ),
        SchemaIncompatibilityType.type_mismatch: (
            f"The type (path '{location}') of a field in the {reader} schema does not match "
            f"with the {writer} schema"
        ),
        SchemaIncompatibilityType.name_mismatch: (
            f"The name of the schema has changed (path '{location}')"
        ),
        SchemaIncompatibilityType.fixed_size_mismatch: (
            f"The size of FIXED type field at path '{location}' in the {reader} schema does not "
            f"match with the {writer} schema"
        ),
        SchemaIncompatibilityType.missing_enum_symbols: (
            f"The {reader} schema is missing enum symbols '{info}' at path '{location}' in the "
            f"{writer} schema"
        ),
        SchemaIncompatibilityType.missing_union_branch: (
            f"The {reader} schema is missing a type inside a union field at path '{location}' "
            f"in the {writer} schema"
        ),
    }
    return Incompatibility(
        error_type=kind.name.upper(),
        description=descriptions.get(kind, f"Incompatible at path '{location}'"),
        additional_info=info,
    )
