"""What landed where: records per topic, documents per collection, objects in S3, Redis keys."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from robostream.config import Settings


@dataclass
class LandedReport:
    """Counts per Kafka topic and per store, as ``robostream stack report`` prints them."""

    topics: dict[str, int] = field(default_factory=dict)
    collections: dict[str, int] = field(default_factory=dict)
    s3_objects: dict[str, tuple[int, int]] = field(default_factory=dict)  # prefix -> (objects, bytes)
    redis_keys: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def kafka_counts(settings: Settings) -> dict[str, int]:
    """Records per topic under the topic prefix (end offset minus start offset, all partitions)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "robostream-report",
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=10).topics
        counts: dict[str, int] = {}
        for name in sorted(metadata):
            if not name.startswith(f"{settings.topics.prefix}."):
                continue
            total = 0
            for partition in metadata[name].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
                total += max(0, high - low)
            counts[name] = total
        return counts
    finally:
        consumer.close()


def mongo_counts(settings: Settings) -> dict[str, int]:
    """Documents per collection of the robostream database."""
    from pymongo import MongoClient
    from pymongo.database import Database

    client: MongoClient[dict[str, Any]]
    with MongoClient(settings.mongo.uri, serverSelectionTimeoutMS=3000) as client:
        db: Database[dict[str, Any]] = client[settings.mongo.database]
        return {name: db[name].estimated_document_count() for name in sorted(db.list_collection_names())}


def s3_counts(settings: Settings) -> dict[str, tuple[int, int]]:
    """Objects and bytes per top-level prefix (``raw/``, ``processed/``) of the bucket."""
    import boto3

    s3 = settings.s3
    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name=s3.region,
                          aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key.get_secret_value())
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        for obj in page.get("Contents", []):
            top = obj["Key"].split("/", 1)[0] + "/"
            counts[top] += 1
            sizes[top] += int(obj["Size"])
    return {prefix: (counts[prefix], sizes[prefix]) for prefix in sorted(counts)}


def redis_counts(settings: Settings) -> dict[str, int]:
    """Keys per kind (``telemetry``, ``frames``, ``stats`` ...)."""
    import redis

    client = redis.Redis.from_url(settings.redis.url, socket_timeout=5)
    counts: Counter[str] = Counter()
    for key in client.scan_iter(count=1000):
        counts[key.decode(errors="replace").split(":", 1)[0]] += 1
    return dict(sorted(counts.items()))


def landed(settings: Settings) -> LandedReport:
    """Count what landed in Kafka, MongoDB, S3 and Redis; a store that fails is named in ``problems``."""
    report = LandedReport()
    steps: list[tuple[str, Any, str]] = [
        ("Kafka", kafka_counts, "topics"), ("MongoDB", mongo_counts, "collections"),
        ("S3", s3_counts, "s3_objects"), ("Redis", redis_counts, "redis_keys"),
    ]
    for store, count, attr in steps:
        try:
            setattr(report, attr, count(settings))
        except Exception as exc:
            with contextlib.suppress(Exception):
                report.problems.append(f"{store}: {type(exc).__name__}: {str(exc)[:200]}")
    return report
