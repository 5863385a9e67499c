"""Parsing Avro schemas the way the registry needs them: validated, with references, with an
identity key that decides "is this the same schema?" (same identity → same id).

The identity is the parsed schema re-serialised as JSON with sorted keys and no whitespace, plus
its references. It is deliberately *not* Avro's Parsing Canonical Form: that form drops ``doc``,
``default``, ``aliases`` and logical types, so a schema that only adds a default (which changes
how it resolves as a reader) would silently get the old schema's id. Like Confluent's
``canonicalString()``, key order and whitespace do not matter, everything else does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.name
import avro.schema

from robostream.schemas.registry.errors import RegistryError, invalid_schema

AVRO = "AVRO"
SUPPORTED_TYPES: tuple[str, ...] = (AVRO,)
MAX_REFERENCE_DEPTH = 32


@dataclass(frozen=True)
class Reference:
    """A named type imported from another subject's version (Confluent schema references)."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}

    @classmethod
    def from_json(cls, data: Any) -> Reference:
        """Build from a request's ``references`` item; raises 42201 if malformed."""
        if not isinstance(data, dict):
            raise invalid_schema(f"Invalid schema reference {data!r}")
        name, subject, version = data.get("name"), data.get("subject"), data.get("version")
        if not (isinstance(name, str) and isinstance(subject, str) and isinstance(version, int)):
            raise invalid_schema(f"Invalid schema reference {data!r}")
        return cls(name=name, subject=subject, version=version)


def references_from_json(data: Any) -> tuple[Reference, ...]:
    """Parse a request's ``references`` list (``None`` means none)."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise invalid_schema("Invalid schema references: expected a list")
    return tuple(Reference.from_json(item) for item in data)


@dataclass(frozen=True)
class ParsedSchema:
    """A valid Avro schema: the parsed object, the text to store, and its identity key."""

    schema: avro.schema.Schema
    text: str
    identity: str
    references: tuple[Reference, ...] = ()


#: Resolves a reference to the referenced version's ``(schema text, its own references)``.
Resolver = Callable[[Reference], tuple[str, Sequence[Reference]]]


def compact_json(text: str) -> str:
    """``text`` re-serialised without whitespace; raises 42201 if it is not JSON."""
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise invalid_schema(f"Invalid schema: not valid JSON ({exc})") from None


def parse_schema(
    text: str,
    references: Sequence[Reference] = (),
    resolve: Resolver | None = None,
    schema_type: str = AVRO,
) -> ParsedSchema:
    """Parse and validate ``text``; raise :class:`RegistryError` 42201 if it is not valid Avro."""
    if schema_type.upper() not in SUPPORTED_TYPES:
        supported = ", ".join(SUPPORTED_TYPES)
        raise invalid_schema(f"Invalid schema type {schema_type}; supported: {supported}")
    if not isinstance(text, str) or not text.strip():
        raise invalid_schema("Empty schema")
    names = avro.name.Names()
    if references:
        if resolve is None:
            raise invalid_schema("Schema references are not supported here")
        _load_references(references, resolve, names, depth=0)
    parsed = _make_schema(text, names)
    identity = json.dumps(
        {"schema": parsed.to_json(), "references": [r.to_json() for r in references]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return ParsedSchema(
        schema=parsed, text=compact_json(text), identity=identity, references=tuple(references)
    )


def _make_schema(text: str, names: avro.name.Names) -> avro.schema.Schema:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise invalid_schema(f"Invalid schema: not valid JSON ({exc})") from None
    try:
        return avro.schema.make_avsc_object(data, names)
    except (avro.errors.AvroException, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise invalid_schema(f"Invalid schema: {exc}") from None


def _load_references(
    references: Sequence[Reference], resolve: Resolver, names: avro.name.Names, depth: int
) -> None:
    if depth > MAX_REFERENCE_DEPTH:
        raise invalid_schema("Invalid schema: references nested too deeply (cycle?)")
    for ref in references:
        try:
            ref_text, nested = resolve(ref)
        except RegistryError:
            raise invalid_schema(
                f"Invalid schema: reference {ref.name!r} to subject '{ref.subject}' version "
                f"{ref.version} not found"
            ) from None
        _load_references(nested, resolve, names, depth + 1)
        if names.has_name(ref.name, None):
            continue  # already defined by another reference
        _make_schema(ref_text, names)
