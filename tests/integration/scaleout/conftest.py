"""Scale-out fixtures: a schema registry of our own, 6-partition topics on a unique prefix
(``so<uuid>.*``), a Mongo connector and database of our own; the topics (Faust's and the
registry's included) and the database are removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from robostream.config import ConnectorSettings, Settings
from robostream.topics import create_topics
from tests.integration.processors.harness import Registry

PARTITIONS = 6


@pytest.fixture(scope="module")
def registry(stack: object, settings: Settings) -> Iterator[Registry]:
    running = Registry(settings)
    yield running
    running.stop()
    _delete_topics(settings.kafka.bootstrap, lambda name: name == running.server.topic)


@pytest.fixture(scope="module")
def scaleout_settings(settings: Settings, registry: Registry) -> Iterator[Settings]:
    """Fresh topics ``so<uuid>.*`` with 6 partitions (created), processors app id
    ``proc-so<uuid>``, one Mongo connector ``mongo-so<uuid>`` on time_series, database ``so<uuid>``."""
    prefix = f"so{uuid.uuid4().hex[:10]}"
    tuned = {"app_id": f"proc-{prefix}", "idle_s": 1.0, "status_interval_s": 0.5,
             "session_timeout_s": 6.0, "batch_within_s": 0.1, "segment_gap_s": 0.5,
             "bucketed_output": True}  # the test reads the bucketed topic (opt-in)
    connector = ConnectorSettings(
        name=f"mongo-{prefix}", kind="mongo", topics=["time_series"], tasks=1, batch_size=200,
        flush_interval_ms=200, errors_tolerance="all", errors_retry_delay_max_ms=1000)
    mine = settings.model_copy(update={
        "topics": settings.topics.model_copy(update={"prefix": prefix, "partitions": PARTITIONS}),
        "schema_registry": settings.schema_registry.model_copy(update={"url": registry.url}),
        "processors": settings.processors.model_copy(update=tuned),
        "mongo": settings.mongo.model_copy(update={"database": prefix}),
        "sinks": settings.sinks.model_copy(update={"port": 0}),
        "connectors": [connector],
    })
    assert create_topics(mine).ok
    yield mine
    app_id = mine.processors.app_id
    _delete_topics(mine.kafka.bootstrap, lambda name: name.startswith((f"{prefix}.", f"{app_id}-")))
    from pymongo import MongoClient

    with MongoClient[dict[str, Any]](mine.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(mine.mongo.database)


def _delete_topics(bootstrap: str, doomed: Callable[[str], bool]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [name for name in admin.list_topics(timeout=10).topics if doomed(name)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()
