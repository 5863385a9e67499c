"""Schema compatibility levels and checks, on top of Apache Avro's reader/writer checker.

BACKWARD: consumers on the new schema read data written with the old one (new = reader).
FORWARD: consumers on the old schema read data written with the new one (old = reader).
FULL: both. ``*_TRANSITIVE``: against every earlier version, not only the latest. NONE: no check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
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
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    return _describe(result, reader_is_new)


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
