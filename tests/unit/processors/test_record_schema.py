"""The derived records have one source, their ``.avsc``: the dataclasses and fast writers follow it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from robostream.processors import BundlePart, MetricStats, TelemetryBucket, WindowStats, wire
from robostream.processors.record_schema import AvroRecord, RecordSchemaError, check_fields


def _renamed(schema: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    edited = copy.deepcopy(schema)
    for record in [edited, *[f["type"]["items"] for f in edited["fields"]
                             if isinstance(f["type"], dict) and f["type"].get("type") == "array"
                             and isinstance(f["type"]["items"], dict)]]:
        for f in record["fields"]:
            if f["name"] == old:
                f["name"] = new
                return edited
    raise AssertionError(f"no field {old!r}")


@dataclass(frozen=True, slots=True)
class _RenamedPart(AvroRecord):
    """BundlePart with ``last`` renamed in the dataclass only."""

    SCHEMA: ClassVar[dict[str, Any]] = BundlePart.SCHEMA

    key: str
    part: str
    is_last: bool
    members: list[str]
    content: bytes


@dataclass(frozen=True, slots=True)
class _RequiredUnit(AvroRecord):
    """MetricStats whose ``unit`` may not be None although the schema allows null."""

    SCHEMA: ClassVar[dict[str, Any]] = MetricStats.SCHEMA

    metric: str
    count: int
    min: float
    max: float
    mean: float
    stddev: float
    last: float
    last_timestamp: int
    unit: str


def test_a_field_renamed_in_the_schema_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MetricStats, "SCHEMA", _renamed(MetricStats.SCHEMA, "unit", "units"))
    expected = r"only in the dataclass: \['unit'\]; only in the schema: \['units'\]"
    with pytest.raises(RecordSchemaError, match=expected):
        check_fields(MetricStats)


def test_a_field_renamed_in_the_dataclass_is_refused() -> None:
    with pytest.raises(RecordSchemaError, match=r"only in the dataclass: \['is_last'\]"):
        check_fields(_RenamedPart)


def test_a_field_that_disagrees_on_null_is_refused() -> None:
    with pytest.raises(RecordSchemaError, match="'unit' may be null"):
        check_fields(_RequiredUnit)


def test_the_fast_bucket_writer_refuses_a_type_it_cannot_write() -> None:
    schema = copy.deepcopy(TelemetryBucket.SCHEMA)
    [timestamps] = [f for f in schema["fields"] if f["name"] == "timestamps"]
    timestamps["type"] = {"type": "array", "items": "double"}
    with pytest.raises(RecordSchemaError, match="no encoder for 'timestamps'"):
        wire.bucket_writers(schema)


def test_the_fast_bucket_writer_follows_the_schema_order() -> None:
    assert [name for name, _ in wire.bucket_writers(TelemetryBucket.SCHEMA)] == \
        [f["name"] for f in TelemetryBucket.SCHEMA["fields"]]


@pytest.mark.parametrize(("old", "new"), [("window_end", "window_stop"), ("stddev", "std")])
def test_the_fast_window_writer_refuses_a_schema_it_does_not_write(old: str, new: str) -> None:
    wire.check_window_layout(WindowStats.SCHEMA)
    with pytest.raises(RecordSchemaError, match="fast WindowStats writer"):
        wire.check_window_layout(_renamed(WindowStats.SCHEMA, old, new))
