"""Schema identity and the ``_schemas`` topic's record format (Confluent's own)."""

from __future__ import annotations

import json

import pytest

from robostream.schemas.registry import RegistryError
from robostream.schemas.registry.avro_schema import Reference, parse_schema
from robostream.schemas.registry.records import (
    ConfigKey,
    ConfigValue,
    Record,
    SchemaKey,
    SchemaValue,
    decode,
    encode,
)
from robostream.schemas.registry.state import RegistryState
from tests.unit.schema_registry.avro_fixtures import Z_OPTIONAL, X, Y, field, record


def test_identity_ignores_whitespace_and_key_order() -> None:
    compact = record(X, Y)
    spaced = json.dumps(json.loads(compact), indent=4)
    reordered = json.dumps({"fields": [X, {"type": "double", "name": "y"}], "namespace":
                            "robostream.test", "name": "Pose", "type": "record"})
    identities = {parse_schema(t).identity for t in (compact, spaced, reordered)}
    assert len(identities) == 1


def test_identity_keeps_defaults_and_docs() -> None:
    plain = parse_schema(record(X))
    with_default = parse_schema(record(field("x", "double", default=0.0)))
    with_doc = parse_schema(record(field("x", "double", doc="metres")))
    assert len({plain.identity, with_default.identity, with_doc.identity}) == 3


def test_stored_text_is_compact_json() -> None:
    parsed = parse_schema(json.dumps(json.loads(record(X)), indent=2))
    assert parsed.text == json.dumps(json.loads(record(X)), separators=(",", ":"))


@pytest.mark.parametrize(
    ("text", "schema_type"),
    [
        ('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}', "AVRO"),
        ("not json", "AVRO"),
        ("", "AVRO"),
        ('{"type": "object"}', "JSON"),
    ],
)
def test_invalid_schemas_are_confluents_42201(text: str, schema_type: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_schema(text, schema_type=schema_type)
    assert (caught.value.status, caught.value.error_code) == (422, 42201)


def test_references_resolve_named_types_from_other_subjects() -> None:
    point = record(X, Y, name="Point")
    pose = json.dumps({"type": "record", "name": "Pose", "namespace": "robostream.test",
                       "fields": [{"name": "at", "type": "robostream.test.Point"}]})
    ref = Reference("robostream.test.Point", "point-value", 1)
    parsed = parse_schema(pose, [ref], lambda r: (point, ()))
    assert parsed.references == (ref,)
    with pytest.raises(RegistryError):
        parse_schema(pose)  # the named type is unknown without its reference


def test_keys_are_byte_identical_to_confluents() -> None:
    key, value = encode(Record(SchemaKey("pose-value", 3), SchemaValue(
        subject="pose-value", version=3, id=7, schema='"string"')))
    assert key == b'{"keytype":"SCHEMA","subject":"pose-value","version":3,"magic":1}'
    assert json.loads(value or b"") == {
        "subject": "pose-value", "version": 3, "id": 7, "schema": '"string"', "deleted": False}
    key, value = encode(Record(ConfigKey(None), ConfigValue("FULL")))
    assert key == b'{"keytype":"CONFIG","subject":null,"magic":0}'
    assert value == b'{"compatibilityLevel":"FULL"}'


def test_records_round_trip_and_tombstones_decode() -> None:
    original = Record(SchemaKey("s", 1), SchemaValue("s", 1, 1, '"int"', deleted=True))
    assert decode(*encode(original)) == original
    tombstone = decode(b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}', None)
    assert tombstone == Record(SchemaKey("s", 1), None)
    assert decode(b'{"keytype":"NOOP","magic":0}', None) is None
    assert decode(b"garbage", b"{}") is None


def _version(
    subject: str, version: int, schema_id: int, text: str, deleted: bool = False
) -> Record:
    value = SchemaValue(subject, version, schema_id, text, deleted=deleted)
    return Record(SchemaKey(subject, version), value)


def test_state_follows_registrations_and_soft_deletes() -> None:
    state = RegistryState()
    v1, v2 = record(X), record(X, Z_OPTIONAL)
    for rec in (_version("a", 1, 1, v1), _version("a", 2, 2, v2), _version("b", 1, 1, v1)):
        state.apply(rec)
    assert state.subjects() == ["a", "b"]
    assert state.id_of(parse_schema(v1).identity) == 1
    assert state.next_id() == 3 and state.next_version("a") == 3
    assert [u.subject for u in state.usages(1)] == ["a", "b"]

    state.apply(_version("b", 1, 1, v1, deleted=True))
    assert state.subjects() == ["a"]
    assert state.subjects(deleted_only=True) == ["b"]
    assert state.schema(1) is not None  # ids of soft-deleted versions still decode


def test_state_forgets_an_id_once_every_use_is_permanently_deleted() -> None:
    state = RegistryState()
    state.apply(_version("a", 1, 5, record(X)))
    state.apply(Record(SchemaKey("a", 1), None))
    assert state.schema(5) is None and state.subjects(deleted=True) == []
    assert state.next_id() == 6  # never hands out an id seen in this run again


def test_state_configs_fall_back_to_global_then_backward() -> None:
    state = RegistryState()
    assert state.level("s").value == "BACKWARD"
    state.apply(Record(ConfigKey(None), ConfigValue("FULL")))
    state.apply(Record(ConfigKey("s"), ConfigValue("NONE")))
    assert (state.level("s").value, state.level("t").value) == ("NONE", "FULL")
    state.apply(Record(ConfigKey("s"), None))
    assert state.subject_level("s") is None and state.level("s").value == "FULL"
