"""Fixtures of the replay tests: each module records its sessions under its own topic prefix
(``rp<unique>``, the catalogue created once, deleted afterwards with any replay namespaces) on
the shared real test stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver
from robostream.topics import create_topics


@pytest.fixture(scope="module")
def tag() -> str:
    """A unique suffix for this module's topics, groups, databases and sessions."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def rp_settings(settings: Settings, kafka_bootstrap: str, registry_url: str, tag: str) -> Iterator[Settings]:
    """Settings of this module: prefix ``rp<tag>`` (2 partitions per topic), its own Mongo
    database; the catalogue is created here and every ``*rp<tag>*`` topic deleted afterwards."""
    mine = settings.model_copy(update={
        "topics": settings.topics.model_copy(update={"prefix": f"rp{tag}", "partitions": 2}),
        "schema_registry": settings.schema_registry.model_copy(update={"url": registry_url}),
        "mongo": settings.mongo.model_copy(update={"database": f"rp_{tag}"}),
        "sinks": settings.sinks.model_copy(update={"port": 0}),
    })
    report = create_topics(mine)
    assert report.ok, [r.error for r in report.results if r.error]
    yield mine
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    doomed = [name for name in admin.list_topics(timeout=10).topics if f"rp{tag}" in name]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()


@pytest.fixture(scope="module")
def resolver(rp_settings: Settings) -> ConfluentSchemaResolver:
    """What the gateway uses: registers the schemas in the test registry."""
    return ConfluentSchemaResolver(rp_settings.schema_registry.url)
