"""Confluent's error codes and bodies, as a REST client sees them."""

from __future__ import annotations

import json

import pytest
import requests

from tests.integration.schema_registry.conftest import RunningRegistry
from tests.integration.schema_registry.schemas import V1, V2_OPTIONAL_FIELD


def _error(answer: requests.Response) -> tuple[int, int, str]:
    assert answer.headers["Content-Type"].startswith("application/vnd.schemaregistry.v1+json")
    body = answer.json()
    assert set(body) == {"error_code", "message"}
    return answer.status_code, body["error_code"], body["message"]


@pytest.fixture
def known(registry: RunningRegistry, subject: str) -> str:
    """``subject`` with versions 1 and 2 registered."""
    for schema in (V1, V2_OPTIONAL_FIELD):
        answer = requests.post(f"{registry.url}/subjects/{subject}/versions",
                               json={"schema": schema}, timeout=30)
        assert answer.status_code == 200
    return subject


def test_root_answers_an_empty_object(registry: RunningRegistry) -> None:
    assert requests.get(f"{registry.url}/", timeout=30).json() == {}


def test_unknown_subject_is_40401(registry: RunningRegistry) -> None:
    for answer in (
        requests.get(f"{registry.url}/subjects/nobody-value/versions", timeout=30),
        requests.get(f"{registry.url}/subjects/nobody-value/versions/latest", timeout=30),
        requests.post(f"{registry.url}/subjects/nobody-value", json={"schema": V1}, timeout=30),
        requests.delete(f"{registry.url}/subjects/nobody-value", timeout=30),
    ):
        assert _error(answer) == (404, 40401, "Subject 'nobody-value' not found.")


def test_unknown_version_is_40402(registry: RunningRegistry, known: str) -> None:
    answer = requests.get(f"{registry.url}/subjects/{known}/versions/7", timeout=30)
    assert _error(answer) == (404, 40402, "Version 7 not found.")


def test_unknown_schema_is_40403(registry: RunningRegistry, known: str) -> None:
    assert _error(requests.get(f"{registry.url}/schemas/ids/987654", timeout=30)) == (
        404, 40403, "Schema 987654 not found")
    unregistered = json.dumps({"type": "record", "name": "Other", "fields": []})
    answer = requests.post(f"{registry.url}/subjects/{known}", json={"schema": unregistered},
                           timeout=30)
    assert _error(answer) == (404, 40403, "Schema not found")


@pytest.mark.parametrize("schema", [
    '{"type": "record", "name": "Broken", "fields": [{"name": "a", "type": "nope"}]}',
    "{not json",
    "",
])
def test_invalid_schema_is_42201(registry: RunningRegistry, subject: str, schema: str) -> None:
    answer = requests.post(f"{registry.url}/subjects/{subject}/versions",
                           json={"schema": schema}, timeout=30)
    status, code, _ = _error(answer)
    assert (status, code) == (422, 42201)


@pytest.mark.parametrize("version", ["0", "abc", "2147483648"])
def test_invalid_version_is_42202(registry: RunningRegistry, known: str, version: str) -> None:
    answer = requests.get(f"{registry.url}/subjects/{known}/versions/{version}", timeout=30)
    assert _error(answer) == (422, 42202, (
        f"The specified version '{version}' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"'))


def test_invalid_compatibility_level_is_42203(registry: RunningRegistry) -> None:
    answer = requests.put(f"{registry.url}/config", json={"compatibility": "SIDEWAYS"},
                          timeout=30)
    assert _error(answer)[:2] == (422, 42203)


def test_delete_order_errors(registry: RunningRegistry, known: str) -> None:
    base = f"{registry.url}/subjects/{known}"
    assert _error(requests.delete(f"{base}/versions/1?permanent=true", timeout=30))[:2] == (
        404, 40407)
    assert _error(requests.delete(f"{base}?permanent=true", timeout=30))[:2] == (404, 40405)
    assert requests.delete(f"{base}/versions/1", timeout=30).json() == 1
    assert _error(requests.delete(f"{base}/versions/1", timeout=30))[:2] == (404, 40406)
    assert requests.delete(base, timeout=30).json() == [2]
    assert _error(requests.delete(base, timeout=30))[:2] == (404, 40404)
    assert requests.delete(f"{base}?permanent=true", timeout=30).json() == [1, 2]


def test_subject_without_its_own_level_is_40408(registry: RunningRegistry, known: str) -> None:
    answer = requests.get(f"{registry.url}/config/{known}", timeout=30)
    assert _error(answer)[:2] == (404, 40408)
    fallback = requests.get(f"{registry.url}/config/{known}?defaultToGlobal=true", timeout=30)
    assert fallback.json() == {"compatibilityLevel": "BACKWARD"}


def test_version_schema_and_id_lookups(registry: RunningRegistry, known: str) -> None:
    version = requests.get(f"{registry.url}/subjects/{known}/versions/1", timeout=30).json()
    assert set(version) == {"subject", "version", "id", "schema"}
    raw = requests.get(f"{registry.url}/subjects/{known}/versions/1/schema", timeout=30)
    assert raw.json() == json.loads(V1)
    by_id = requests.get(f"{registry.url}/schemas/ids/{version['id']}", timeout=30).json()
    assert by_id == {"schema": version["schema"]}
    uses = requests.get(f"{registry.url}/schemas/ids/{version['id']}/versions", timeout=30)
    assert {"subject": known, "version": 1} in uses.json()


def test_unknown_path_is_a_json_404(registry: RunningRegistry) -> None:
    assert _error(requests.get(f"{registry.url}/nowhere", timeout=30))[:2] == (404, 404)
