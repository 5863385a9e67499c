"""The schemas topic deleted under a running registry: it is re-created from the registry's
memory, so nothing registered is lost, ids keep counting, and a restart serves it all."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.integration.schema_registry.conftest import RunningRegistry
from tests.integration.schema_registry.schemas import V1, V2_OPTIONAL_FIELD, as_json, avro
from tests.integration.schema_registry.test_registry_durability import eventually

Start = Callable[[str], RunningRegistry]


def _delete(admin: AdminClient, topic: str) -> None:
    admin.delete_topics([topic], operation_timeout=30)[topic].result()
    eventually(lambda: topic not in admin.list_topics(timeout=10).topics)


def _fill(client: SchemaRegistryClient) -> list[int]:
    """pose-value v1, v2 (FULL), pose-key soft-deleted: what must survive."""
    ids = [client.register_schema("pose-value", avro(s)) for s in (V1, V2_OPTIONAL_FIELD)]
    client.register_schema("pose-key", avro('"string"'))
    client.set_compatibility("pose-value", "FULL")
    client.delete_subject("pose-key")
    return ids


def _assert_everything_kept(client: SchemaRegistryClient, ids: list[int]) -> None:
    live = client.get_subjects()
    assert "pose-value" in live and "pose-key" not in live  # soft-deleted stays soft-deleted
    assert {"pose-key", "pose-value"} <= set(client.get_subjects(deleted=True))
    assert [client.get_version("pose-value", v).schema_id for v in (1, 2)] == ids
    assert client.get_compatibility("pose-value") == "FULL"
    assert as_json(client.get_schema(ids[0])) == json.loads(V1)


def test_a_deleted_topic_is_re_created_on_the_next_write_and_a_restart_loses_nothing(
    start_registry: Start, new_topic: Callable[[], str], kafka_bootstrap: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = new_topic()
    first = start_registry(topic)
    ids = _fill(first.client())
    _delete(admin, topic)

    client = first.client()
    _assert_everything_kept(client, ids)  # served from memory meanwhile
    new_id = client.register_schema("bytes-value", avro('"bytes"'))
    assert new_id == max(ids) + 2  # ids keep counting (pose-key's "string" took max + 1)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    assert admin.describe_configs([resource])[resource].result(30)["cleanup.policy"].value == "compact"
    first.stop()

    again = start_registry(topic).client()
    assert again.get_subjects() == ["bytes-value", "pose-value"]
    assert again.get_latest_version("bytes-value").schema_id == new_id
    _assert_everything_kept(again, ids)


def test_a_topic_deleted_and_re_created_empty_is_restored_without_any_write(
    start_registry: Start, new_topic: Callable[[], str], kafka_bootstrap: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = new_topic()
    first = start_registry(topic)
    ids = _fill(first.client())
    _delete(admin, topic)
    created = NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})
    admin.create_topics([created], operation_timeout=30)[topic].result()  # empty, by someone else

    restored = first.server.store
    eventually(lambda: restored.restores == 1, timeout=30)  # the watcher found it, nobody wrote
    first.stop()
    _assert_everything_kept(start_registry(topic).client(), ids)


def test_writes_are_refused_with_a_clear_error_while_the_topic_cannot_be_re_created(
    start_registry: Start, new_topic: Callable[[], str], kafka_bootstrap: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = new_topic()
    first = start_registry(topic)
    ids = _fill(first.client())
    _delete(admin, topic)
    wrong = NewTopic(topic, 2, 1, config={"cleanup.policy": "compact"})  # two partitions: unusable
    admin.create_topics([wrong], operation_timeout=30)[topic].result()

    client = first.client()
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("bytes-value", avro('"bytes"'))
    assert (refused.value.http_status_code, refused.value.error_code) == (500, 50001)
    assert refused.value.error_message == (
        f"The schemas topic {topic} was deleted and cannot be re-created yet (schemas topic {topic} "
        "has 2 partitions; it must have exactly 1); the registry keeps serving what it holds in "
        "memory and refuses writes until then")
    _assert_everything_kept(client, ids)  # reads still answer

    _delete(admin, topic)
    assert eventually(lambda: first.client().register_schema("bytes-value", avro('"bytes"')),
                      timeout=30) == max(ids) + 2
    first.stop()
    again = start_registry(topic).client()
    _assert_everything_kept(again, ids)
    assert again.get_latest_version("bytes-value").schema_id == max(ids) + 2
