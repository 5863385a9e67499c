"""Fast union writes with fastavro: mark record branches with ``(name, datum)`` tuples.

fastavro picks the branch of a union holding a record by validating the datum against every
branch, deeply (for a columnar time_series group: every sample, twice). Its tuple notation
``(record_full_name, datum)`` names the branch instead. The bytes written are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from robostream.schemas import catalog

Tagger = Callable[[Any], Any]


def _union_tagger(schema: Any, namespace: str, records: dict[str, Any]) -> Tagger | None:
    """A function marking record branches of unions with fastavro's ``(name, datum)`` notation.

    Without it fastavro validates a dict against every union branch before writing it (deeply,
    for a columnar time_series group); with it the branch is picked by name. ``None`` when a
    schema has no such union.
    """
    if isinstance(schema, str):
        full = schema if "." in schema else f"{namespace}.{schema}"
        return _union_tagger(records[full], namespace, records) if full in records else None
    if isinstance(schema, list):
        return _tag_union(schema, namespace, records)
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _union_tagger(kind, namespace, records)
    if kind == "record":
        return _tag_record(schema, namespace, records)
    if kind in ("array", "map"):
        inner = _union_tagger(schema["items" if kind == "array" else "values"], namespace, records)
        if inner is None:
            return None
        if kind == "array":
            return lambda value: [inner(v) for v in value]
        return lambda value: {k: inner(v) for k, v in value.items()}
    return None


def _record_full_name(schema: dict[str, Any], namespace: str) -> str:
    name = str(schema["name"])
    return name if "." in name else f"{schema.get('namespace', namespace)}.{name}"


def _tag_record(schema: dict[str, Any], namespace: str, records: dict[str, Any]) -> Tagger | None:
    full = _record_full_name(schema, namespace)
    records[full] = schema
    inner_ns = full.rsplit(".", 1)[0]
    taggers = [(f["name"], _union_tagger(f["type"], inner_ns, records)) for f in schema["fields"]]
    active = [(name, fn) for name, fn in taggers if fn is not None]
    if not active:
        return None

    def tag(value: dict[str, Any]) -> dict[str, Any]:
        out = dict(value)
        for name, fn in active:
            out[name] = fn(out[name])
        return out

    return tag


def _tag_union(branches: list[Any], namespace: str, records: dict[str, Any]) -> Tagger | None:
    named: list[tuple[str, Tagger | None]] = []
    for branch in branches:
        inner = _union_tagger(branch, namespace, records)
        if isinstance(branch, dict) and branch.get("type") == "record":
            named.append((_record_full_name(branch, namespace), inner))
        elif isinstance(branch, str) and branch not in _PRIMITIVE_TYPES:
            full = branch if "." in branch else f"{namespace}.{branch}"
            if records.get(full, {}).get("type") == "record":
                named.append((full, inner))
    if len(named) != 1 or any(_kind_of(b) == "map" for b in branches):
        return None
    name, inner = named[0]

    def tag(value: Any) -> Any:
        if type(value) is dict:
            return (name, inner(value) if inner else value)
        return value

    return tag


def _kind_of(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    return _kind_of(schema["type"]) if isinstance(schema, dict) else "union"


_PRIMITIVE_TYPES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@cache
def tagger_for(schema_name: str) -> Tagger | None:
    """The union tagger of a catalogue schema (cached), or None if it needs none."""
    return _union_tagger(catalog.load_schema(schema_name), catalog.NAMESPACE, {})
