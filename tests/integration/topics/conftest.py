"""Fixtures of the topics tests: a catalogue under a unique prefix on the real test broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from robostream.config import Settings
from tests.integration.conftest import delete_prefix_topics


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
    delete_prefix_topics(kafka_bootstrap, mine)


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> AdminClient:
    """A plain AdminClient, to change topics behind robostream's back."""
    return AdminClient({"bootstrap.servers": kafka_bootstrap})

