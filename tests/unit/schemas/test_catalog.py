"""The schema files: complete, documented, consistent, and the reference page is up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastavro
import pytest

from robostream.schemas import (
    DataType,
    build_envelope,
    content_type_for,
    load_schema,
    parsed_schema,
    schema_names,
    schema_str,
    subject_for,
    topic_for,
)
from robostream.schemas.docgen import render
from robostream.schemas.examples import example_payload

ROOT = Path(__file__).resolve().parents[3]
AVRO_DIR = ROOT / "src" / "robostream" / "schemas" / "avro"
ENVELOPE_FIELDS = ["timestamp", "robot_id", "session_id", "data_type", "seq", "payload"]


def test_one_schema_file_per_data_type_plus_events_and_blob() -> None:
    files = {p.stem for p in AVRO_DIR.glob("*.avsc")}
    assert files == {str(dt) for dt in DataType} | {"rpc_event", "session_event", "envelope", "blob"}
    assert schema_names()[:17] == [str(dt) for dt in DataType]


def _fields(schema: Any, seen: set[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(schema, list):
        for branch in schema:
            out += _fields(branch, seen)
    elif isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record" and schema["name"] not in seen:
            seen.add(schema["name"])
            for field in schema["fields"]:
                out.append(field)
                out += _fields(field["type"], seen)
        for key in ("items", "values"):
            if key in schema:
                out += _fields(schema[key], seen)
        if isinstance(kind, dict | list):
            out += _fields(kind, seen)
    return out


@pytest.mark.parametrize("name", schema_names())
def test_schema_is_self_contained_documented_and_namespaced(name: str) -> None:
    schema = load_schema(name)
    fastavro.parse_schema(schema, named_schemas={})  # no outside references
    assert schema["namespace"] == "io.robostream" and schema["doc"]
    fields = _fields(schema, set())
    assert fields
    undocumented = [f["name"] for f in fields if not f.get("doc")]
    assert undocumented == []


@pytest.mark.parametrize("data_type", list(DataType), ids=str)
def test_value_schema_is_the_envelope_with_a_typed_payload(data_type: DataType) -> None:
    schema = load_schema(data_type)
    assert [f["name"] for f in schema["fields"]] == ENVELOPE_FIELDS
    timestamp = schema["fields"][0]["type"]
    assert timestamp == {"type": "long", "logicalType": "timestamp-micros"}
    assert schema["fields"][-1]["type"]["type"] == "record"
    assert [f["type"] for f in schema["fields"][1:5]] == ["string", "string", "string", "long"]


def test_time_series_documents_units() -> None:
    text = schema_str(DataType.TIME_SERIES)
    for unit in ("(m)", "(rad)", "rad/s", "N·m", "(N)", "m/s²", "(%)", "(MB", "(ms)", "(µs)"):
        assert unit in text, unit


def test_binary_types_share_the_blob() -> None:
    for data_type in ("images", "video", "audio", "file", "safetensors", "zip", "tar", "msgpack"):
        payload = load_schema(data_type)["fields"][-1]["type"]
        blob = next(f for f in payload["fields"] if f["name"] == "blob")["type"]
        assert blob["name"] == "Blob"
        content = next(f for f in blob["fields"] if f["name"] == "content")["type"]
        assert content[0] == "bytes" and content[1]["name"] == "ClaimCheck"
        assert [f["name"] for f in content[1]["fields"]] == ["bucket", "key", "size", "sha256"]


def test_names_subjects_and_content_types() -> None:
    assert topic_for("time_series") == "robot.time_series"
    assert subject_for("images") == "robot.images-value"
    assert subject_for(DataType.VIDEO, prefix="lab") == "lab.video-value"
    assert content_type_for("vuer_msg") == "application/vnd.robostream.vuer_msg+avro"
    assert parsed_schema("log") is parsed_schema(DataType.LOG)  # parsed once
    with pytest.raises(ValueError):
        subject_for("telemetry")


@pytest.mark.parametrize("data_type", list(DataType), ids=str)
def test_examples_are_valid(data_type: DataType) -> None:
    build_envelope(data_type, example_payload(data_type), robot_id="robot_001", session_id="s1", seq=0)


def test_reference_page_is_generated_and_current() -> None:
    page = (ROOT / "docs" / "schemas.md").read_text()
    assert page == render(), "run: python -m robostream.schemas.docgen > docs/schemas.md"
    for name in schema_names():
        assert f"## `{name}`" in page
