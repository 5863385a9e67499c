"""Fixtures of the topics tests: a catalogue under a unique prefix on the real test broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from robostream.config import Settings
from robostream.topics import catalogue


@pytest.fixture
def topic_settings(settings: Settings, kafka_bootstrap: str, unique: str) -> Iterator[Settings]:
    """Settings whose topics (prefix ``t<unique>``) collide with no other test's.

    The topics created under it are deleted afterwards.
    """
    mine = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap": kafka_bootstrap}),
        "topics": settings.topics.model_copy(update={"prefix": f"t{unique}"}),
        "schema_registry": settings.schema_registry.model_copy(
            update={"topic": f"_schemas_t{unique}"}),
    })
    yield mine
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    present = admin.list_topics(timeout=10).topics
    # only this test's prefix: the catalogue also lists the shared schema registry topic
    doomed = [spec.name for spec in catalogue(mine)
              if spec.name in present and spec.name.startswith(f"{mine.topics.prefix}.")]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> AdminClient:
    """A plain AdminClient, to change topics behind robostream's back."""
    return AdminClient({"bootstrap.servers": kafka_bootstrap})

