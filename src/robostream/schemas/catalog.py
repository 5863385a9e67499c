"""The schema catalogue: the ``.avsc`` files, self-contained, parsed once, and their subjects.

Each data type has ``avro/<data_type>.avsc``: the Kafka record value, one record per envelope
(envelope fields + a ``payload`` typed for the data type). ``blob.avsc`` is shared by the
binary types; references to its named types are inlined here so every schema registered
with the registry is self-contained. ``rpc_event``, ``session_event`` and ``envelope`` (the
generic form with a MessagePack payload) complete the set.

Subjects follow Confluent's TopicNameStrategy: ``<topic>-value`` with topics named
``<prefix>.<data_type>`` (``settings.topics.prefix``, default ``robot``).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import fastavro

from robostream.schemas.datatypes import DataType

NAMESPACE = "io.robostream"
DEFAULT_TOPIC_PREFIX = "robot"
#: Schemas beside the 17 data types.
EVENT_SCHEMAS: tuple[str, ...] = ("rpc_event", "session_event", "envelope")
#: Files holding named types shared by other schemas (inlined on load).
SHARED_SCHEMAS: tuple[str, ...] = ("blob",)

_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)


def schema_names() -> list[str]:
    """Every loadable schema: the 17 data types, then ``rpc_event``, ``session_event``, ``envelope``."""
    return [str(dt) for dt in DataType] + list(EVENT_SCHEMAS)


@cache
def _raw(name: str) -> dict[str, Any]:
    if name not in schema_names() and name not in SHARED_SCHEMAS:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(schema_names())}")
    text = resources.files("robostream.schemas").joinpath("avro").joinpath(f"{name}.avsc").read_text(
        "utf-8"
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _shared_types() -> dict[str, Any]:
    """Full name -> definition of every named type in the shared files."""
    found: dict[str, Any] = {}
    for name in SHARED_SCHEMAS:
        _collect_named(_raw(name), NAMESPACE, found)
    return found


def _full_name(schema: dict[str, Any], namespace: str) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    return f"{schema.get('namespace', namespace)}.{name}"


def _collect_named(schema: Any, namespace: str, out: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_named(branch, namespace, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            full = _full_name(schema, namespace)
            out[full] = schema
            namespace = full.rsplit(".", 1)[0]
        for field in schema.get("fields", ()):
            _collect_named(field["type"], namespace, out)
        for key in ("items", "values"):
            if key in schema:
                _collect_named(schema[key], namespace, out)
        if isinstance(kind, dict | list):
            _collect_named(kind, namespace, out)


def _inline(schema: Any, namespace: str, defined: set[str]) -> Any:
    """Copy ``schema`` with the first reference to each shared named type replaced by its body."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        full = schema if "." in schema else f"{namespace}.{schema}"
        if full in defined:
            return schema
        body = _shared_types().get(full)
        if body is None:
            return schema
        return _inline(copy.deepcopy(body), namespace, defined)
    if isinstance(schema, list):
        return [_inline(branch, namespace, defined) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        full = _full_name(schema, namespace)
        defined.add(full)
        namespace = full.rsplit(".", 1)[0]
    if "fields" in schema:
        out["fields"] = [
            {**field, "type": _inline(field["type"], namespace, defined)} for field in schema["fields"]
        ]
    for key in ("items", "values"):
        if key in schema:
            out[key] = _inline(schema[key], namespace, defined)
    if isinstance(kind, dict | list | str) and kind not in _PRIMITIVES and kind not in (
        "record", "enum", "fixed", "array", "map"
    ):
        out["type"] = _inline(kind, namespace, defined)
    return out


@cache
def _schema_cached(name: str) -> dict[str, Any]:
    inlined: dict[str, Any] = _inline(_raw(name), NAMESPACE, set())
    return inlined


def load_schema(name: str | DataType) -> dict[str, Any]:
    """The self-contained schema (JSON object) for a data type or event schema name.

    Returns a fresh copy; mutate freely.
    """
    return copy.deepcopy(_schema_cached(str(name)))


def schema_str(name: str | DataType) -> str:
    """The schema as compact JSON text: what is registered under the subject."""
    return _schema_str(str(name))


@cache
def _schema_str(name: str) -> str:
    return json.dumps(_schema_cached(name), separators=(",", ":"), ensure_ascii=False)


def parsed_schema(name: str | DataType) -> Any:
    """The fastavro-parsed schema (cached) for writing and reading."""
    return _parsed(str(name))


@cache
def _parsed(name: str) -> Any:
    return fastavro.parse_schema(load_schema(name), named_schemas={})


def payload_schema(data_type: DataType | str) -> dict[str, Any]:
    """The schema of the ``payload`` field of a data type (self-contained; a fresh copy)."""
    schema = load_schema(str(DataType(data_type)))
    for field in schema["fields"]:
        if field["name"] == "payload":
            body: dict[str, Any] = field["type"]
            return body
    raise KeyError(f"schema {data_type} has no payload field")  # pragma: no cover


def topic_for(data_type: DataType | str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """``<prefix>.<data_type>``: the topic of a data type (``prefix`` = settings.topics.prefix)."""
    return f"{prefix}.{DataType(data_type)}"


def subject_name(topic: str) -> str:
    """Confluent TopicNameStrategy subject of a topic's record values: ``<topic>-value``."""
    return f"{topic}-value"


def subject_for(data_type: DataType | str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """Subject of a data type's values, e.g. ``robot.time_series-value``."""
    return subject_name(topic_for(data_type, prefix))


def content_type_for(data_type: DataType | str) -> str:
    """The ``content-type`` Kafka header: ``application/vnd.robostream.<type>+avro``."""
    return f"application/vnd.robostream.{DataType(data_type)}+avro"
