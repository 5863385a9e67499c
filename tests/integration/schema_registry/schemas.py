"""Avro schemas the schema registry's integration tests register."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import Schema


def pose(*extra: dict[str, Any], drop_y: bool = False) -> str:
    """The robot pose record: x, y (required) plus ``extra`` fields."""
    fields: list[dict[str, Any]] = [{"name": "x", "type": "double"}]
    if not drop_y:
        fields.append({"name": "y", "type": "double"})
    return json.dumps({"type": "record", "name": "Pose", "namespace": "robostream.test",
                       "fields": fields + list(extra)})


OPTIONAL_Z = {"name": "z", "type": ["null", "double"], "default": None}
REQUIRED_Z = {"name": "z", "type": "double"}

V1 = pose()
V2_OPTIONAL_FIELD = pose(OPTIONAL_Z)
V2_REQUIRED_FIELD = pose(REQUIRED_Z)
V2_REMOVED_FIELD = pose(drop_y=True)


def avro(text: str) -> Schema:
    return Schema(text, "AVRO")


def as_json(schema: Schema) -> Any:
    """The parsed JSON of a schema the registry returned."""
    assert schema.schema_str is not None
    return json.loads(schema.schema_str)


def unique_schema(unique: str) -> str:
    """A schema no other test registers (so its id is used by this test alone)."""
    return json.dumps({"type": "record", "name": f"Only{unique}", "fields": [
        {"name": "x", "type": "double"}]})
