"""Our codec and Confluent's serializers agree, through our registry and the real broker."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from robostream.config import Settings
from robostream.schemas import (
    ConfluentSchemaResolver,
    DataType,
    build_envelope,
    decode_record,
    encode_record,
    schema_str,
)
from robostream.schemas.examples import example_payload
from robostream.schemas.packed import pack_time_series
from robostream.topics import create_topics, topic_for


def _read_one(bootstrap: str, topic: str, group: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    msg = None
    for _ in range(60):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            break
    consumer.close()
    assert msg is not None and msg.error() is None
    return msg.key(), msg.value(), msg.headers() or []


def test_codec_record_read_by_confluent_deserializer_and_back(
    settings: Settings, kafka_bootstrap: str, unique: str
) -> None:
    prefix = f"cx{unique}"
    local = settings.model_copy(update={"topics": settings.topics.model_copy(update={"prefix": prefix})})
    create_topics(local)
    topic = topic_for(DataType.TIME_SERIES, local)
    resolver = ConfluentSchemaResolver(settings.schema_registry.url)
    client = SchemaRegistryClient({"url": settings.schema_registry.url})

    ours = build_envelope(DataType.TIME_SERIES, example_payload(DataType.TIME_SERIES),
                          robot_id="robot_001", session_id="s1", seq=7, timestamp=1_764_000_000.5)
    record = encode_record(ours, resolver, topic_prefix=prefix)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    producer.produce(topic, key=record.key, value=record.value, headers=record.headers)
    assert producer.flush(30) == 0

    key, value, headers = _read_one(kafka_bootstrap, topic, f"g-{unique}")
    theirs = AvroDeserializer(client)(value, SerializationContext(topic, MessageField.VALUE))
    assert theirs["robot_id"] == "robot_001" and theirs["seq"] == 7
    assert theirs["payload"]["t"] == ours.payload["t"]
    assert decode_record(value, resolver, key=key, headers=headers) == ours

    # and the other way: Confluent's serializer writes, our codec reads
    serializer = AvroSerializer(client, schema_str(DataType.TIME_SERIES),
                                conf={"auto.register.schemas": True})
    their_bytes = serializer(theirs | {"seq": 8}, SerializationContext(topic, MessageField.VALUE))
    back = decode_record(their_bytes, resolver)
    assert back.seq == 8 and back.payload == ours.payload


def test_packed_columns_make_records_confluent_reads_like_lists(
    settings: Settings, kafka_bootstrap: str, unique: str
) -> None:
    """A robot's packed time_series columns become the very record its lists would make."""
    prefix = f"cp{unique}"
    local = settings.model_copy(update={"topics": settings.topics.model_copy(update={"prefix": prefix})})
    create_topics(local)
    topic = topic_for(DataType.TIME_SERIES, local)
    resolver = ConfluentSchemaResolver(settings.schema_registry.url)
    payload = example_payload(DataType.TIME_SERIES)
    lists = build_envelope(DataType.TIME_SERIES, payload, robot_id="robot_001", session_id="s1",
                           seq=7, timestamp=1_764_000_000.5)
    packed_envelope = build_envelope(DataType.TIME_SERIES, pack_time_series(payload), robot_id="robot_001",
                                     session_id="s1", seq=7, timestamp=1_764_000_000.5)
    assert type(packed_envelope.payload["t"]) is bytes
    record = encode_record(packed_envelope, resolver, topic_prefix=prefix, ingest_time_ms=5)
    assert record == encode_record(lists, resolver, topic_prefix=prefix, ingest_time_ms=5)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    producer.produce(topic, key=record.key, value=record.value, headers=record.headers)
    assert producer.flush(30) == 0

    _, value, _ = _read_one(kafka_bootstrap, topic, f"g-{unique}")
    theirs = AvroDeserializer(SchemaRegistryClient({"url": settings.schema_registry.url}))(
        value, SerializationContext(topic, MessageField.VALUE))
    assert theirs["payload"]["t"] == lists.payload["t"]
    assert theirs["payload"]["joints"]["angle"] == lists.payload["joints"]["angle"]
    assert theirs["payload"]["pose"]["position"]["x"] == lists.payload["pose"]["position"]["x"]
