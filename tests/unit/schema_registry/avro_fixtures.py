"""Avro schemas shared by the schema registry's unit tests."""

from __future__ import annotations

import json
from typing import Any

import avro.schema


def record(*fields: dict[str, Any], name: str = "Pose") -> str:
    """A record schema's JSON text with ``fields``."""
    return json.dumps({"type": "record", "name": name, "namespace": "robostream.test",
                       "fields": list(fields)})


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def parse(text: str) -> avro.schema.Schema:
    return avro.schema.parse(text)


X = field("x", "double")
Y = field("y", "double")
Z_OPTIONAL = field("z", ["null", "double"], default=None)
Z_REQUIRED = field("z", "double")
