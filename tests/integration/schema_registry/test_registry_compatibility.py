"""Schema evolution through the REST API: what passes, and Confluent's 409 when it does not."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.integration.schema_registry.conftest import RunningRegistry
from tests.integration.schema_registry.schemas import (
    OPTIONAL_Z,
    V1,
    V2_OPTIONAL_FIELD,
    V2_REMOVED_FIELD,
    V2_REQUIRED_FIELD,
    pose,
)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def post(registry: RunningRegistry, path: str, body: Any) -> requests.Response:
    return requests.post(f"{registry.url}{path}", data=json.dumps(body),
                         headers={"Content-Type": CONTENT_TYPE}, timeout=30)


def register(registry: RunningRegistry, subject: str, schema: str) -> requests.Response:
    return post(registry, f"/subjects/{subject}/versions", {"schema": schema})


def set_level(registry: RunningRegistry, subject: str, level: str) -> None:
    answer = requests.put(f"{registry.url}/config/{subject}", json={"compatibility": level},
                          timeout=30)
    assert answer.json() == {"compatibility": level}


def test_adding_an_optional_field_passes_backward(registry: RunningRegistry, subject: str) -> None:
    assert register(registry, subject, V1).status_code == 200
    answer = register(registry, subject, V2_OPTIONAL_FIELD)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(CONTENT_TYPE)
    assert set(answer.json()) == {"id"}


def test_adding_a_required_field_fails_backward_with_confluents_409(
    registry: RunningRegistry, subject: str
) -> None:
    register(registry, subject, V1)
    answer = register(registry, subject, V2_REQUIRED_FIELD)
    assert answer.status_code == 409
    body = answer.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == 409
    assert body["message"].startswith(
        f'Schema being registered is incompatible with an earlier schema for subject "{subject}"'
    )
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in body["message"]
    assert "{oldSchemaVersion: 1}" in body["message"]
    assert "{compatibility: 'BACKWARD'}" in body["message"]


@pytest.mark.parametrize("level", ["FORWARD", "FULL", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE"])
def test_removing_a_required_field_fails_with_confluents_409(
    registry: RunningRegistry, subject: str, level: str
) -> None:
    """Old consumers still need ``y``: only levels that protect old consumers refuse it."""
    register(registry, subject, V1)
    set_level(registry, subject, level)
    answer = register(registry, subject, V2_REMOVED_FIELD)
    assert answer.status_code == 409
    assert answer.json()["error_code"] == 409
    assert "The field 'y' at path '/fields/1' in the old schema has no default value" in (
        answer.json()["message"])


def test_removing_a_required_field_is_backward_compatible(
    registry: RunningRegistry, subject: str
) -> None:
    """Under BACKWARD (Confluent's default) new consumers simply ignore the old field."""
    register(registry, subject, V1)
    assert register(registry, subject, V2_REMOVED_FIELD).status_code == 200


def test_none_accepts_anything(registry: RunningRegistry, subject: str) -> None:
    register(registry, subject, V1)
    set_level(registry, subject, "NONE")
    assert register(registry, subject, '"string"').status_code == 200


def test_transitive_levels_check_every_earlier_version(
    registry: RunningRegistry, subject: str
) -> None:
    labelled = {"name": "label", "type": "string", "default": "none"}
    required_label = {"name": "label", "type": "string"}
    register(registry, subject, V1)
    register(registry, subject, pose(labelled))
    set_level(registry, subject, "BACKWARD_TRANSITIVE")
    refused = register(registry, subject, pose(required_label))
    assert refused.status_code == 409 and "{oldSchemaVersion: 1}" in refused.json()["message"]
    set_level(registry, subject, "BACKWARD")
    assert register(registry, subject, pose(required_label)).status_code == 200


def test_global_level_applies_to_subjects_without_their_own(
    registry: RunningRegistry, subject: str
) -> None:
    register(registry, subject, V1)
    assert requests.put(f"{registry.url}/config", json={"compatibility": "forward"},
                        timeout=30).json() == {"compatibility": "FORWARD"}
    try:
        assert requests.get(f"{registry.url}/config", timeout=30).json() == {
            "compatibilityLevel": "FORWARD"}
        assert register(registry, subject, V2_REMOVED_FIELD).status_code == 409
        assert register(registry, subject, V2_REQUIRED_FIELD).status_code == 200
    finally:
        requests.put(f"{registry.url}/config", json={"compatibility": "BACKWARD"}, timeout=30)


def test_compatibility_endpoint_answers_without_registering(
    registry: RunningRegistry, subject: str
) -> None:
    register(registry, subject, V1)
    path = f"/compatibility/subjects/{subject}/versions"
    assert post(registry, f"{path}/latest", {"schema": V2_OPTIONAL_FIELD}).json() == {
        "is_compatible": True}
    verbose = post(registry, f"{path}/1?verbose=true", {"schema": V2_REQUIRED_FIELD}).json()
    assert verbose["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in verbose["messages"])
    assert post(registry, path, {"schema": pose(OPTIONAL_Z)}).json()["is_compatible"] is True
    assert requests.get(f"{registry.url}/subjects/{subject}/versions", timeout=30).json() == [1]
    assert post(registry, "/compatibility/subjects/nobody-value/versions/latest",
                {"schema": V1}).json() == {"is_compatible": True}
