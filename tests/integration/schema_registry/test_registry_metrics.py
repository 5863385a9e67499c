"""``GET /metrics`` on the schema registry: requests by route and status, schemas and subjects."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.integration.schema_registry.conftest import RunningRegistry
from tests.integration.schema_registry.schemas import V1, V2_OPTIONAL_FIELD, avro
from tests.prometheus import scrape

REGISTER = "/subjects/{subject}/versions"


def test_the_registry_metrics_count_requests_and_schemas(
    registry: RunningRegistry, client: SchemaRegistryClient, subject: str,
) -> None:
    url = registry.url + "/metrics"
    before = scrape(url)
    schemas = before.value("robostream_schema_registry_schemas")
    subjects = before.value("robostream_schema_registry_subjects")
    registered = sum(s.value for s in before.samples if s.name == "robostream_schema_registry_requests_total"
                     and s.labels["route"] == REGISTER and s.labels["status"] == "200")

    client.register_schema(subject, avro(V1))
    client.register_schema(subject, avro(V2_OPTIONAL_FIELD))
    try:
        client.get_version(subject, 7)
    except SchemaRegistryError as exc:
        assert exc.http_status_code == 404

    after = scrape(url)
    assert after.value("robostream_schema_registry_schemas") == schemas + 2
    assert after.value("robostream_schema_registry_subjects") == subjects + 1
    assert after.value("robostream_schema_registry_requests_total", method="POST", route=REGISTER,
                       status="200") == registered + 2
    assert after.value("robostream_schema_registry_requests_total", method="GET",
                       route="/subjects/{subject}/versions/{version}", status="404") >= 1
    assert after.value("robostream_schema_registry_request_seconds_count", route=REGISTER) >= 2
    assert not [s for s in after.samples if s.labels.get("route") == "/metrics"]  # scrapes not counted
