"""confluent-kafka's own SchemaRegistryClient, AvroSerializer and AvroDeserializer against our
registry, unmodified."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.integration.schema_registry.conftest import RunningRegistry
from tests.integration.schema_registry.schemas import (
    V1,
    V2_OPTIONAL_FIELD,
    as_json,
    avro,
    unique_schema,
)


def test_register_then_read_back_every_way(client: SchemaRegistryClient, subject: str) -> None:
    first = client.register_schema(subject, avro(V1))
    second = client.register_schema(subject, avro(V2_OPTIONAL_FIELD))

    assert second != first
    assert subject in client.get_subjects()
    assert client.get_versions(subject) == [1, 2]
    latest = client.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, second)
    assert as_json(latest.schema) == json.loads(V2_OPTIONAL_FIELD)
    assert client.get_version(subject, 1).schema_id == first
    assert as_json(client.get_schema(first)) == json.loads(V1)
    found = client.lookup_schema(subject, avro(V1))
    assert (found.version, found.schema_id) == (1, first)
    assert [(v.subject, v.version) for v in client.get_schema_versions(first)] == [(subject, 1)]
    assert client.get_schema_types() == ["AVRO"]


def test_registering_the_same_schema_again_is_idempotent(
    registry: RunningRegistry, subject: str
) -> None:
    ids = {registry.client().register_schema(subject, avro(V1)) for _ in range(3)}
    assert len(ids) == 1
    assert registry.client().get_versions(subject) == [1]


def test_same_schema_under_two_subjects_shares_one_id(
    client: SchemaRegistryClient, subject: str
) -> None:
    key_subject = subject.replace("-value", "-key")
    assert client.register_schema(subject, avro(V1)) == client.register_schema(
        key_subject, avro(V1))


def test_soft_then_permanent_delete(
    registry: RunningRegistry, client: SchemaRegistryClient, subject: str, unique: str
) -> None:
    schema_id = client.register_schema(subject, avro(unique_schema(unique)))
    client.set_compatibility(subject, "NONE")
    client.register_schema(subject, avro(V1))

    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.get_version(subject, 2, deleted=True).version == 2
    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    assert client.get_schema(schema_id) is not None  # old records stay readable

    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert subject not in client.get_subjects(deleted=True)
    with pytest.raises(SchemaRegistryError) as caught:
        registry.client().get_schema(schema_id)  # a fresh client: no cached copy
    assert caught.value.error_code == 40403


def test_reregistering_a_soft_deleted_schema_makes_a_new_version(
    registry: RunningRegistry, subject: str
) -> None:
    schema_id = registry.client().register_schema(subject, avro(V1))
    registry.client().delete_subject(subject)
    fresh = registry.client()  # the client caches registrations; ask the registry itself
    assert fresh.register_schema(subject, avro(V1)) == schema_id
    assert fresh.get_versions(subject) == [2]


def test_compatibility_config_global_and_per_subject(
    client: SchemaRegistryClient, subject: str
) -> None:
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(subject, "FULL_TRANSITIVE") == {"compatibility": "FULL_TRANSITIVE"}
    assert client.get_compatibility(subject) == "FULL_TRANSITIVE"
    assert client.get_config(subject).compatibility_level == "FULL_TRANSITIVE"
    client.delete_config(subject)
    with pytest.raises(SchemaRegistryError) as caught:
        client.get_compatibility(subject)
    assert caught.value.error_code == 40408


def test_avro_serializer_to_deserializer_through_kafka(
    registry: RunningRegistry, kafka_bootstrap: str, subject: str
) -> None:
    topic = f"robot.pose.sr{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    try:
        pose = {"x": 1.5, "y": -2.25, "z": None}
        serializer = AvroSerializer(registry.client(), V2_OPTIONAL_FIELD)
        value = serializer(pose, SerializationContext(topic, MessageField.VALUE))
        assert value is not None and value[0] == 0  # Confluent wire format: magic byte 0
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(topic, key=b"robot_001/s1", value=value)
        assert producer.flush(30) == 0

        received = _consume_one(kafka_bootstrap, topic)
        deserializer = AvroDeserializer(registry.client())  # learns the schema from the id
        decoded = deserializer(received, SerializationContext(topic, MessageField.VALUE))
        assert decoded == pose
        registered = registry.client().get_latest_version(f"{topic}-value")
        assert int.from_bytes(received[1:5], "big") == registered.schema_id
    finally:
        admin.delete_topics([topic])[topic].result(30)


def _consume_one(bootstrap: str, topic: str) -> bytes:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sr-test-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                value = message.value()
                assert value is not None
                return value
        raise AssertionError(f"nothing arrived on {topic}")
    finally:
        consumer.close()


def test_schema_references_serialize_and_protect_what_they_import(
    registry: RunningRegistry, unique: str
) -> None:
    client = registry.client()
    namespace = f"robostream.ref{unique}"
    point = json.dumps({"type": "record", "name": "Point", "namespace": namespace,
                        "fields": [{"name": "x", "type": "double"}, {"name": "y", "type": "double"}]})
    pose = json.dumps({"type": "record", "name": "Pose", "namespace": namespace,
                       "fields": [{"name": "at", "type": f"{namespace}.Point"},
                                  {"name": "heading", "type": "double"}]})
    point_subject, pose_subject = f"point{unique}-value", f"pose{unique}-value"
    client.register_schema(point_subject, avro(point))
    reference = SchemaReference(f"{namespace}.Point", point_subject, 1)
    pose_schema = Schema(pose, "AVRO", [reference])

    context = SerializationContext(f"pose{unique}", MessageField.VALUE)
    value = {"at": {"x": 1.0, "y": 2.0}, "heading": 0.5}
    encoded = AvroSerializer(client, pose_schema)(value, context)
    assert AvroDeserializer(registry.client())(encoded, context) == value

    pose_id = client.get_latest_version(pose_subject).schema_id
    assert client.get_referenced_by(point_subject, 1) == [pose_id]
    with pytest.raises(SchemaRegistryError) as caught:
        client.delete_version(point_subject, 1)
    assert caught.value.error_code == 42206
