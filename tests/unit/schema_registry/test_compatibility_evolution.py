"""BACKWARD checks on the schema edits teams actually make: each pair is (old, new), and the
verdict must say whether a consumer on the new schema reads data written with the old one.

Every rule has a compatible and an incompatible case, so a checker that says "compatible" (or
"incompatible") to everything fails here.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from robostream.schemas.registry import CompatibilityLevel, check_compatibility
from tests.unit.schema_registry.avro_fixtures import field, parse, record

BACKWARD = CompatibilityLevel.BACKWARD


def backward_issues(old: str, new: str) -> list[str]:
    """Confluent-style error types of reading ``old`` data with ``new`` (empty: compatible)."""
    verdict = check_compatibility(parse(new), [parse(old)], BACKWARD)
    return [issue.error_type for issue in verdict.incompatibilities]


def one_field(type_: Any, **extra: Any) -> str:
    return record(field("v", type_, **extra))


def inner(*fields: dict[str, Any], name: str = "Joint", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


# --- type promotions ----------------------------------------------------------------------------

PROMOTIONS = [
    ("int", "long"), ("int", "float"), ("int", "double"),
    ("long", "float"), ("long", "double"),
    ("float", "double"),
    ("string", "bytes"), ("bytes", "string"),
]
NARROWINGS = [
    ("long", "int"), ("float", "int"), ("double", "int"),
    ("float", "long"), ("double", "long"),
    ("double", "float"),
    ("int", "string"), ("string", "int"), ("bytes", "long"), ("boolean", "int"), ("int", "boolean"),
]


def _wrap(kind: str, type_: str) -> Any:
    return {
        "plain": type_,
        "array": {"type": "array", "items": type_},
        "map": {"type": "map", "values": type_},
        "nullable": ["null", type_],
        "nested": inner(field("angle", type_)),
    }[kind]


WRAPPERS = ["plain", "array", "map", "nullable", "nested"]


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize(("old", "new"), PROMOTIONS)
def test_a_promotion_reads_old_data(old: str, new: str, wrapper: str) -> None:
    extra = {"default": None} if wrapper == "nullable" else {}
    old_schema, new_schema = one_field(_wrap(wrapper, old), **extra), one_field(_wrap(wrapper, new), **extra)
    assert backward_issues(old_schema, new_schema) == []


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize(("old", "new"), NARROWINGS)
def test_a_narrowing_or_a_different_type_is_refused(old: str, new: str, wrapper: str) -> None:
    extra = {"default": None} if wrapper == "nullable" else {}
    issues = backward_issues(one_field(_wrap(wrapper, old), **extra), one_field(_wrap(wrapper, new), **extra))
    assert issues in (["TYPE_MISMATCH"], ["MISSING_UNION_BRANCH"])


def test_a_promotion_is_what_a_reader_really_does() -> None:
    """The checker's promotions are fastavro's: an int written is read as a long/float/double."""
    written = io.BytesIO()
    fastavro.schemaless_writer(written, fastavro.parse_schema({"type": "int"}), 7)
    for reader in ("long", "float", "double"):
        written.seek(0)
        assert fastavro.schemaless_reader(written, {"type": "int"}, {"type": reader}) == 7


# --- unions and null defaults -------------------------------------------------------------------

BASE = record(field("x", "double"))


@pytest.mark.parametrize(
    ("new", "issues"),
    [
        # adding an optional field: a union with null first and a null default
        (record(field("x", "double"), field("label", ["null", "string"], default=None)), []),
        # the union without a default: old data has nothing to fill it with
        (record(field("x", "double"), field("label", ["null", "string"])),
         ["READER_FIELD_MISSING_DEFAULT_VALUE"]),
        # a null default on a type that cannot be null: no default at all for a reader
        (record(field("x", "double"), field("label", "string", default=None)),
         ["READER_FIELD_MISSING_DEFAULT_VALUE"]),
        (record(field("x", "double"), field("count", "long", default="none")),
         ["READER_FIELD_MISSING_DEFAULT_VALUE"]),
        # a default that is a value of the union's (non-first) branch, as fastavro accepts
        (record(field("x", "double"), field("label", ["string", "null"], default=None)), []),
        # a record default missing a required field cannot fill the record
        (record(field("x", "double"), field("j", inner(field("angle", "double")), default={})),
         ["READER_FIELD_MISSING_DEFAULT_VALUE"]),
        (record(field("x", "double"), field("j", inner(field("angle", "double")), default={"angle": 0.0})),
         []),
    ],
)
def test_adding_a_field_needs_a_default_of_its_type(new: str, issues: list[str]) -> None:
    assert backward_issues(BASE, new) == issues


def test_an_invalid_null_default_is_what_fastavro_refuses() -> None:
    """Why a null default on an ``int`` field counts as no default: no consumer could parse it."""
    with pytest.raises(fastavro.schema.SchemaParseException, match="Default value <None> must match"):
        fastavro.parse_schema({"type": "record", "name": "R",
                               "fields": [{"name": "n", "type": "int", "default": None}]})


@pytest.mark.parametrize(
    ("old", "new", "issues"),
    [
        # required -> optional: the new union holds every old value
        ("string", ["null", "string"], []),
        # optional -> required: an old null has no place in the new schema
        (["null", "string"], "string", ["TYPE_MISMATCH"]),
        # a branch added / removed
        (["null", "string"], ["null", "string", "long"], []),
        (["null", "string", "long"], ["null", "string"], ["MISSING_UNION_BRANCH"]),
        # branches reordered (the default follows the new first branch)
        (["null", "string"], ["string", "null"], []),
        # a branch promoted inside the union, and narrowed
        (["null", "int"], ["null", "double"], []),
        (["null", "double"], ["null", "int"], ["MISSING_UNION_BRANCH"]),
    ],
)
def test_union_edits(old: Any, new: Any, issues: list[str]) -> None:
    def default_for(type_: Any) -> dict[str, Any]:
        if not isinstance(type_, list):
            return {}
        return {"default": None} if type_[0] == "null" else {"default": ""}

    assert backward_issues(one_field(old, **default_for(old)), one_field(new, **default_for(new))) == issues


# --- nested records -----------------------------------------------------------------------------

JOINT = inner(field("angle", "double"))


@pytest.mark.parametrize(
    ("new_joint", "issues"),
    [
        (inner(field("angle", "double"), field("torque", ["null", "double"], default=None)), []),
        (inner(field("angle", "double"), field("torque", "double")), ["READER_FIELD_MISSING_DEFAULT_VALUE"]),
        (inner(), []),  # a field dropped: the reader skips it
        (inner(field("angle", "double"), name="Link"), ["NAME_MISMATCH"]),
        (inner(field("angle", "double"), name="Link", aliases=["robostream.test.Joint"]), []),
        (inner(field("radians", "double", aliases=["angle"])), []),  # renamed with an alias
        (inner(field("radians", "double")), ["READER_FIELD_MISSING_DEFAULT_VALUE"]),
    ],
)
@pytest.mark.parametrize("where", ["field", "array", "map", "nullable"])
def test_nested_record_edits(new_joint: dict[str, Any], issues: list[str], where: str) -> None:
    def place(joint: dict[str, Any]) -> str:
        if where == "field":
            return one_field(joint)
        if where == "array":
            return one_field({"type": "array", "items": joint})
        if where == "map":
            return one_field({"type": "map", "values": joint})
        return one_field(["null", joint], default=None)

    got = backward_issues(place(JOINT), place(new_joint))
    if where == "nullable" and issues:
        # inside a union a record the reader cannot read is a union branch it lacks
        assert got == ["MISSING_UNION_BRANCH"]
    else:
        assert got == issues


def test_a_named_type_used_twice_is_checked_where_it_is_defined() -> None:
    old = record(field("left", inner(field("angle", "long"))), field("right", "robostream.test.Joint"))
    widened = record(field("left", inner(field("angle", "double"))), field("right", "robostream.test.Joint"))
    narrowed = record(field("left", inner(field("angle", "int"))), field("right", "robostream.test.Joint"))
    assert backward_issues(old, widened) == []
    assert backward_issues(old, narrowed) == ["TYPE_MISMATCH"]


# --- arrays and maps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "issues"),
    [
        ({"type": "array", "items": "int"}, {"type": "map", "values": "int"}, ["TYPE_MISMATCH"]),
        ({"type": "map", "values": "int"}, {"type": "array", "items": "int"}, ["TYPE_MISMATCH"]),
        ("double", {"type": "array", "items": "double"}, ["TYPE_MISMATCH"]),
        ({"type": "array", "items": "double"}, "double", ["TYPE_MISMATCH"]),
        ({"type": "map", "values": {"type": "array", "items": ["null", "int"]}},
         {"type": "map", "values": {"type": "array", "items": ["null", "long"]}}, []),
        ({"type": "map", "values": {"type": "array", "items": ["null", "long"]}},
         {"type": "map", "values": {"type": "array", "items": ["null", "int"]}}, ["MISSING_UNION_BRANCH"]),
        ({"type": "array", "items": {"type": "array", "items": "float"}},
         {"type": "array", "items": {"type": "array", "items": "double"}}, []),
    ],
)
def test_container_edits(old: Any, new: Any, issues: list[str]) -> None:
    assert backward_issues(one_field(old), one_field(new)) == issues


def test_the_failing_path_points_into_the_container() -> None:
    old = one_field({"type": "map", "values": inner(field("angle", "double"))})
    new = one_field({"type": "map", "values": inner(field("angle", "double"), field("torque", "double"))})
    [issue] = check_compatibility(parse(new), [parse(old)], BACKWARD).incompatibilities
    assert issue.additional_info == "torque"
    assert "'/fields/0/type/values/fields/1'" in issue.description
