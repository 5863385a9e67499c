"""Compatibility levels: what a producer or consumer team sees when it evolves a schema."""

from __future__ import annotations

import avro.schema
import pytest

from robostream.schemas.registry import CompatibilityLevel, RegistryError, check_compatibility
from tests.unit.schema_registry.avro_fixtures import Z_OPTIONAL, Z_REQUIRED, X, Y, field, parse, record

V1 = parse(record(X, Y))
ADD_OPTIONAL = parse(record(X, Y, Z_OPTIONAL))
ADD_REQUIRED = parse(record(X, Y, Z_REQUIRED))
REMOVE_REQUIRED = parse(record(X))

L = CompatibilityLevel


@pytest.mark.parametrize(
    ("new", "level", "compatible"),
    [
        # BACKWARD (the default): consumers upgraded first; the new schema reads old data.
        (ADD_OPTIONAL, L.BACKWARD, True),
        (ADD_REQUIRED, L.BACKWARD, False),
        (REMOVE_REQUIRED, L.BACKWARD, True),
        # FORWARD: producers upgraded first; old consumers read new data.
        (ADD_OPTIONAL, L.FORWARD, True),
        (ADD_REQUIRED, L.FORWARD, True),
        (REMOVE_REQUIRED, L.FORWARD, False),
        # FULL: both ways.
        (ADD_OPTIONAL, L.FULL, True),
        (ADD_REQUIRED, L.FULL, False),
        (REMOVE_REQUIRED, L.FULL, False),
        # NONE: anything goes, even a different type.
        (parse('"string"'), L.NONE, True),
    ],
)
def test_level_against_latest(
    new: avro.schema.Schema, level: CompatibilityLevel, compatible: bool
) -> None:
    verdict = check_compatibility(new, [V1], level)
    assert verdict.compatible is compatible
    assert (verdict.failing_index is None) is compatible


def test_removing_a_required_field_names_the_field_for_forward() -> None:
    verdict = check_compatibility(REMOVE_REQUIRED, [V1], L.FORWARD)
    [issue] = verdict.incompatibilities
    assert issue.error_type == "READER_FIELD_MISSING_DEFAULT_VALUE"
    assert issue.additional_info == "y"
    assert "'/fields/1'" in issue.description and "old schema" in issue.description


def test_adding_a_required_field_is_explained_like_confluent() -> None:
    [issue] = check_compatibility(ADD_REQUIRED, [V1], L.BACKWARD).incompatibilities
    assert issue.render() == (
        "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'z' at path "
        "'/fields/2' in the new schema has no default value and is missing in the old schema', "
        "additionalInfo:'z'}"
    )


def test_transitive_backward_checks_every_version() -> None:
    v1 = parse(record(X))
    v2 = parse(record(X, field("label", "string", default="none")))
    v3 = parse(record(X, field("label", "string")))  # reads v2 data, not v1 data
    assert check_compatibility(v3, [v1, v2], L.BACKWARD).compatible
    verdict = check_compatibility(v3, [v1, v2], L.BACKWARD_TRANSITIVE)
    assert not verdict.compatible
    assert verdict.failing_index == 0


def test_transitive_forward_checks_every_version() -> None:
    v1 = parse(record(X, Y))
    v2 = parse(record(X, field("y", "double", default=0.0)))
    v3 = parse(record(X))  # v2 consumers default y; v1 consumers cannot
    assert check_compatibility(v3, [v1, v2], L.FORWARD).compatible
    verdict = check_compatibility(v3, [v1, v2], L.FORWARD_TRANSITIVE)
    assert verdict.failing_index == 0


def test_full_transitive_checks_both_directions_on_every_version() -> None:
    v1 = parse(record(X))
    v2 = parse(record(X, Z_OPTIONAL))
    v3 = parse(record(X, Z_OPTIONAL, field("w", "int", default=0)))
    assert check_compatibility(v3, [v1, v2], L.FULL_TRANSITIVE).compatible
    v4 = parse(record(X, Z_REQUIRED))
    assert check_compatibility(v4, [v1, v2, v3], L.FULL).compatible is False
    assert check_compatibility(v4, [v1, v2, v3], L.FULL_TRANSITIVE).failing_index == 2


def test_numeric_promotion_and_enum_symbols_follow_avro_resolution() -> None:
    as_int, as_long = parse(record(field("n", "int"))), parse(record(field("n", "long")))
    assert check_compatibility(as_long, [as_int], L.BACKWARD).compatible  # long reads int
    [issue] = check_compatibility(as_int, [as_long], L.BACKWARD).incompatibilities
    assert issue.error_type == "TYPE_MISMATCH"

    def colours(*symbols: str) -> avro.schema.Schema:
        return parse(record(field("c", {"type": "enum", "name": "Colour",
                                         "symbols": list(symbols)})))

    two, three = colours("RED", "GREEN"), colours("RED", "GREEN", "BLUE")
    assert check_compatibility(three, [two], L.BACKWARD).compatible
    forward = check_compatibility(three, [two], L.FORWARD)
    assert [i.error_type for i in forward.incompatibilities] == ["MISSING_ENUM_SYMBOLS"]


def test_first_version_is_always_compatible() -> None:
    assert check_compatibility(ADD_REQUIRED, [], L.FULL_TRANSITIVE).compatible


@pytest.mark.parametrize("text", ["backward", "FULL_TRANSITIVE", " none "])
def test_level_names_are_case_insensitive(text: str) -> None:
    assert CompatibilityLevel.parse(text).value == text.strip().upper()


@pytest.mark.parametrize("text", ["SIDEWAYS", "", None, 3])
def test_unknown_level_is_confluents_42203(text: object) -> None:
    with pytest.raises(RegistryError) as caught:
        CompatibilityLevel.parse(text)
    assert (caught.value.status, caught.value.error_code) == (422, 42203)
