"""Apache Kafka of the local stack, driven by confluent-kafka as a robot platform would."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

N = 10_000


def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        fut.result(timeout=30)


def _consume(bootstrap: str, topic: str, group: str, limit: int) -> list[int]:
    """Consume up to ``limit`` records in ``group``, commit synchronously, close."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen: list[int] = []
    idle = 0
    while len(seen) < limit and idle < 20:
        batch = consumer.consume(num_messages=min(500, limit - len(seen)), timeout=0.5)
        idle = 0 if batch else idle + 1
        for msg in batch:
            assert msg.error() is None, msg.error()
            seen.append(int(msg.value()))
    consumer.commit(asynchronous=False)
    consumer.close()
    return seen


def test_group_resumes_exactly_where_it_stopped(kafka_bootstrap: str, unique: str) -> None:
    topic, group = f"it.stack.{unique}", f"it-group-{unique}"
    _create_topic(kafka_bootstrap, topic, partitions=6)

    producer = Producer({
        "bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 5, "compression.type": "lz4",
    })
    failures: list[object] = []
    for i in range(N):
        producer.produce(topic, key=f"robot_{i % 10:03d}".encode(), value=str(i).encode(),
                         on_delivery=lambda err, _msg: failures.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 6

    first = _consume(kafka_bootstrap, topic, group, limit=4_000)
    second = _consume(kafka_bootstrap, topic, group, limit=N)  # a restarted consumer

    assert len(first) == 4_000
    assert len(second) == N - 4_000
    assert sorted(first + second) == list(range(N)), "every record exactly once across restarts"

    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    committed = probe.committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
    ends = [probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(6)]
    probe.close()
    # the group's committed position is the end of every partition that holds data
    assert [max(tp.offset, 0) for tp in committed] == ends
    assert sum(ends) == N
