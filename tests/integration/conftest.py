"""Clients of the real test stack. The ``settings``, ``stack`` and ``kafka_bootstrap`` fixtures
(session-scoped, one stack per run) are defined in tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from robostream.config import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group, bucket-prefix and collection names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def mongo(stack: object, settings: Settings) -> Iterator[Any]:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo.uri)
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3(stack: object, settings: Settings) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.s3.endpoint,
        region_name=settings.s3.region,
        aws_access_key_id=settings.s3.access_key,
        aws_secret_access_key=settings.s3.secret_key.get_secret_value(),
    )


@pytest.fixture(scope="session")
def redis_client(stack: object, settings: Settings) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(settings.redis.url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry_url(stack: object, settings: Settings) -> str:
    """The test stack's schema registry (robostream's own, started with the stack)."""
    return settings.schema_registry.url


def delete_prefix_topics(bootstrap: str, mine: Settings) -> None:
    """Delete the catalogue topics under ``mine``'s prefix (never the shared registry topic)."""
    from confluent_kafka.admin import AdminClient

    from robostream.topics import catalogue

    admin = AdminClient({"bootstrap.servers": bootstrap})
    present = admin.list_topics(timeout=10).topics
    doomed = [spec.name for spec in catalogue(mine)
              if spec.name in present and spec.name.startswith(f"{mine.topics.prefix}.")]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
