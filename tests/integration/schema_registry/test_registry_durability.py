"""The ``_schemas`` topic is the registry's only state: restarts and a second instance on the
same topic see the same subjects, versions and ids."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.integration.schema_registry.conftest import RunningRegistry
from tests.integration.schema_registry.schemas import V1, V2_OPTIONAL_FIELD, as_json, avro

T = TypeVar("T")
Start = Callable[[str], RunningRegistry]


def eventually(probe: Callable[[], T], timeout: float = 15.0) -> T:
    """``probe()``'s first truthy answer (another instance applies records asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = probe()
            if answer:
                return answer
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer within {timeout}s")
        time.sleep(0.1)


def _numbered(i: int) -> str:
    return json.dumps({"type": "record", "name": f"Reading{i}", "fields": [
        {"name": "value", "type": "double"}]})


def test_restart_serves_the_same_subjects_ids_and_config(
    start_registry: Start, new_topic: Callable[[], str]
) -> None:
    topic = new_topic()
    first = start_registry(topic)
    client = first.client()
    ids = [client.register_schema("pose-value", avro(s)) for s in (V1, V2_OPTIONAL_FIELD)]
    client.register_schema("pose-key", avro('"string"'))
    client.set_compatibility("pose-value", "FULL")
    client.delete_subject("pose-key")
    first.stop()

    again = start_registry(topic).client()
    assert again.get_subjects() == ["pose-value"]
    assert again.get_subjects(deleted=True) == ["pose-key", "pose-value"]
    assert [again.get_version("pose-value", v).schema_id for v in (1, 2)] == ids
    assert again.get_compatibility("pose-value") == "FULL"
    assert as_json(again.get_schema(ids[0])) == json.loads(V1)
    assert again.register_schema("other-value", avro(V1)) == ids[0]  # same schema, same id
    assert again.register_schema("bytes-value", avro('"bytes"')) == max(ids) + 2


def test_schemas_topic_is_compacted_and_holds_confluents_records(
    registry: RunningRegistry, kafka_bootstrap: str, subject: str
) -> None:
    schema_id = registry.client().register_schema(subject, avro(V1))
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, registry.topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"
    assert len(admin.list_topics(registry.topic, timeout=10).topics[registry.topic].partitions) == 1

    records = _read_all(kafka_bootstrap, registry.topic)
    key = {"keytype": "SCHEMA", "subject": subject, "version": 1, "magic": 1}
    assert records[json.dumps(key, separators=(",", ":"))] == {
        "subject": subject, "version": 1, "id": schema_id,
        "schema": json.dumps(json.loads(V1), separators=(",", ":")), "deleted": False,
    }


def test_two_instances_agree_on_ids(start_registry: Start, new_topic: Callable[[], str]) -> None:
    topic = new_topic()
    a, b = start_registry(topic), start_registry(topic)
    on_a = a.client().register_schema("pose-value", avro(V1))
    seen_by_b = eventually(lambda: b.client().get_latest_version("pose-value"))
    assert seen_by_b.schema_id == on_a
    assert b.client().register_schema("pose-copy-value", avro(V1)) == on_a
    on_b = b.client().register_schema("pose-value", avro(V2_OPTIONAL_FIELD))
    assert eventually(lambda: a.client().get_versions("pose-value") == [1, 2])
    assert a.client().register_schema("pose-again-value", avro(V2_OPTIONAL_FIELD)) == on_b


def test_concurrent_writers_never_collide(
    start_registry: Start, new_topic: Callable[[], str]
) -> None:
    topic = new_topic()
    a, b = start_registry(topic), start_registry(topic)

    def register(i: int) -> tuple[int, int]:
        instance = a if i % 2 else b
        # every schema twice, once through each instance: same schema must get the same id
        first = instance.client().register_schema(f"s{i}-value", avro(_numbered(i)))
        other = b if i % 2 else a
        return i, other.client().register_schema(f"t{i}-value", avro(_numbered(i))) - first

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(register, range(16)))
    assert all(delta == 0 for _, delta in results)

    def ids(instance: RunningRegistry) -> dict[str, int | None] | None:
        client = instance.client()
        seen = {s: client.get_latest_version(s).schema_id for s in client.get_subjects()}
        return seen if len(seen) == 32 else None

    on_a = eventually(lambda: ids(a))
    assert on_a is not None and on_a == eventually(lambda: ids(b))
    assert set(on_a.values()) == set(range(1, 17))  # 16 schemas, 16 distinct ids


def _read_all(bootstrap: str, topic: str) -> dict[str, object]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sr-read-{topic}",
                         "enable.partition.eof": True, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    latest: dict[str, object] = {}
    try:
        while True:
            message = consumer.poll(10)
            assert message is not None, "the schemas topic did not reach its end"
            if message.error():
                return latest
            key = message.key()
            value = message.value()
            assert key is not None
            latest[key.decode()] = None if value is None else json.loads(value)
    finally:
        consumer.close()
