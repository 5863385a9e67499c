"""Schema evolution guard: every released schema stays readable by the current one.

``tests/data/released_schemas/`` holds the schemas as released, exactly as registered (the raw
data types and events self-contained, as ``catalog.schema_str`` gives them; the derived records
in ``derived/``, as ``processors.records.schema_str`` gives them). The current schema of each must
be BACKWARD compatible with its frozen copy through the registry's own checker, so an edit that
would be refused with a 409 by the registry in production (or break a consumer reading retained
data) fails here instead.

Releasing a changed schema: keep the old file if it must still be read, or replace it with the new
release once every topic holding the old version has aged out. A new schema: freeze it with
``python -m tests.unit.schemas.test_released_schemas`` (writes only the missing files).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robostream.processors import records
from robostream.schemas import catalog
from robostream.schemas.registry import CompatibilityLevel, check_compatibility
from robostream.schemas.registry.avro_schema import parse_schema

RELEASED = Path(__file__).resolve().parents[2] / "data" / "released_schemas"


def current_schemas() -> dict[str, str]:
    """Every schema registered today, by its frozen file's path relative to ``RELEASED``."""
    current = {f"{name}.avsc": catalog.schema_str(name) for name in catalog.schema_names()}
    for record_type in records.RECORD_TYPES.values():
        current[f"derived/{record_type.SCHEMA['name']}.avsc"] = records.schema_str(record_type)
    return current


def released_schemas() -> dict[str, str]:
    return {path.relative_to(RELEASED).as_posix(): path.read_text("utf-8")
            for path in sorted(RELEASED.rglob("*.avsc"))}


def backward_problems(released: str, current: str) -> list[str]:
    """The registry's verdict on registering ``current`` after ``released`` under BACKWARD."""
    verdict = check_compatibility(
        parse_schema(current).schema, [parse_schema(released).schema], CompatibilityLevel.BACKWARD
    )
    return [issue.render() for issue in verdict.incompatibilities]


def test_every_schema_is_frozen_and_no_released_schema_disappeared() -> None:
    current, released = set(current_schemas()), set(released_schemas())
    assert current - released == set(), "new schemas: freeze them (see this module's docstring)"
    assert released - current == set(), "released schemas no longer produced by the code"


@pytest.mark.parametrize("name", sorted(released_schemas()))
def test_current_schema_reads_its_released_version(name: str) -> None:
    current = current_schemas().get(name)
    if current is None:
        pytest.fail(f"{name} was released and no longer exists")
    assert backward_problems(released_schemas()[name], current) == []


# The guard must be able to fail: breaking edits of a real released schema are refused.


def _edited_time_series(edit: str) -> str:
    schema = json.loads(catalog.schema_str("time_series"))
    fields = schema["fields"]
    if edit == "add a required field":
        fields.append({"name": "calibration_id", "type": "string"})
    elif edit == "add a field with a null default but no null branch":
        fields.append({"name": "calibration_id", "type": "string", "default": None})
    elif edit == "narrow a long":
        [seq] = [f for f in fields if f["name"] == "seq"]
        assert seq["type"] == "long"
        seq["type"] = "int"
    elif edit == "rename the record":
        schema["name"] = schema["name"] + "V2"
    elif edit == "add an optional field":
        fields.append({"name": "calibration_id", "type": ["null", "string"], "default": None})
    return json.dumps(schema)


@pytest.mark.parametrize(
    "edit",
    ["add a required field", "add a field with a null default but no null branch", "narrow a long",
     "rename the record"],
)
def test_a_breaking_edit_of_a_released_schema_fails_the_guard(edit: str) -> None:
    released = released_schemas()["time_series.avsc"]
    assert backward_problems(released, _edited_time_series(edit)) != []


def test_an_optional_field_passes_the_guard() -> None:
    released = released_schemas()["time_series.avsc"]
    assert backward_problems(released, _edited_time_series("add an optional field")) == []


def test_a_breaking_edit_of_a_derived_schema_fails_the_guard() -> None:
    released = released_schemas()["derived/WindowStats.avsc"]
    schema = json.loads(released)
    schema["fields"].append({"name": "late_records", "type": "long"})
    assert backward_problems(released, json.dumps(schema)) != []


def freeze_missing() -> list[Path]:
    """Write the frozen copy of every current schema that has none; never touch an existing one."""
    written = []
    for name, text in current_schemas().items():
        path = RELEASED / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n", "utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    for frozen in freeze_missing():
        print(f"froze {frozen}")
