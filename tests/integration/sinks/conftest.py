"""Fixtures of the sink tests: each module gets its own topic prefix, Mongo database and
connectors (group ``connect-<name>-<unique>``) on the shared real test stack.

The schema registry of the test stack is used when it answers; otherwise one runs in-process
for the session (its own ``_schemas_sinks_<uuid>`` topic).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from robostream.config import ConnectorSettings, Settings
from robostream.schemas import ConfluentSchemaResolver, DataType, schema_str, subject_for
from robostream.stack import Stack
from robostream.stack.process import StackError
from robostream.topics import catalogue, create_topics
from tests.conftest import SessionEnd, keep_stacks
from tests.containers import stack_mode

CORE_SERVERS = ["kafka", "mongo", "s3", "redis"]


@pytest.fixture(scope="session")
def stack(settings: Settings, session_end: SessionEnd) -> Iterator[Stack | None]:
    """The test stack; while the schema registry cannot start there, the four data servers."""
    if stack_mode() == "containers":
        yield None  # tests/conftest.py's settings fixture started the containers
        return
    test_stack = Stack(settings)
    try:
        test_stack.up()
    except StackError as exc:
        if "schema-registry" not in str(exc):
            raise
        test_stack.up(CORE_SERVERS)
    yield test_stack
    if not keep_stacks():
        session_end.add(test_stack.state_dir, test_stack.down)


def _registers(url: str) -> bool:
    """True if the registry at ``url`` answers and can register a schema right now."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    try:
        client = SchemaRegistryClient({"url": url})
        client.register_schema(f"sinks-probe-{uuid.uuid4().hex[:8]}-value", Schema('"string"', "AVRO"))
    except Exception:  # down, or up but failing (e.g. its topic is gone): use our own
        return False
    return True


class _InProcessRegistry:
    def __init__(self, settings: Settings, topic: str) -> None:
        from robostream.schemas.registry import SchemaRegistryServer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = SchemaRegistryServer(settings, topic=topic)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(90)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def tag() -> str:
    """A unique suffix for this module's topics, database, connectors and sessions."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def make_settings(
    settings: Settings, kafka_bootstrap: str, registry_url: str, tag: str,
) -> Iterator[Callable[..., Settings]]:
    """Builds this module's settings: prefix ``sk<tag>``, database ``sk_<tag>``, connectors
    named ``<kind>-<tag>``. The catalogue is created once; topics and database go afterwards."""
    base = settings.model_copy(update={
        "topics": settings.topics.model_copy(update={"prefix": f"sk{tag}", "partitions": 2}),
        "mongo": settings.mongo.model_copy(update={"database": f"sk_{tag}"}),
        "sinks": settings.sinks.model_copy(update={"port": 0}),
        "schema_registry": settings.schema_registry.model_copy(
            update={"url": registry_url, "topic": f"_schemas_sk{tag}"}),
    })
    report = create_topics(base)
    assert report.ok, report

    def make(*connectors: dict[str, Any]) -> Settings:
        configs = [ConnectorSettings(**{"name": f"{c['kind']}-{tag}", "errors_tolerance": "all",
                                        "flush_interval_ms": 200, "errors_retry_delay_max_ms": 1000,
                                        **c}) for c in connectors]
        return base.model_copy(update={"connectors": configs})

    yield make
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    present = admin.list_topics(timeout=10).topics
    mine = f"{base.topics.prefix}."
    doomed = [spec.name for spec in catalogue(base) if spec.name in present
              and (spec.name.startswith(mine) or spec.name == base.schema_registry.topic)]
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        future.result()
    from pymongo import MongoClient

    with MongoClient[dict[str, Any]](base.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(base.mongo.database)
    _delete_objects(base, tag)


#: Session-id prefixes of the sink tests (sessions are ``<name>-<tag>``).
SESSION_NAMES = ("vol", "crash", "outage", "dlq", "pause", "obj")


def _delete_objects(settings: Settings, tag: str) -> None:
    """Remove this module's S3 objects (every session id carries the module's tag)."""
    from robostream.sinks.s3 import s3_client

    client = s3_client(settings)
    for top in ("raw", "processed"):
        for name in SESSION_NAMES:
            prefix = f"{top}/robot_001/{name}-{tag}/"
            for page in client.get_paginator("list_objects_v2").paginate(
                    Bucket=settings.s3.bucket, Prefix=prefix):
                objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objects:
                    client.delete_objects(Bucket=settings.s3.bucket, Delete={"Objects": objects})


@pytest.fixture(scope="module")
def resolver(registry_url: str, make_settings: Callable[..., Settings]) -> ConfluentSchemaResolver:
    """What producers (the gateway) use: registers schemas in the test registry.

    The subjects of this module's prefix are registered up front, retrying while a freshly
    started registry still answers 5xx (see the report: UNKNOWN_LEADER_EPOCH right after the
    schemas topic is created).
    """
    prefix = make_settings().topics.prefix
    resolver = ConfluentSchemaResolver(registry_url)
    deadline = time.monotonic() + 30
    for data_type in DataType:
        while True:
            try:
                resolver.id_for(subject_for(data_type, prefix), schema_str(data_type))
                break
            except SchemaRegistryError as exc:
                if exc.http_status_code < 500 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    return resolver


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for ``python -m robostream.cli.sink_cmd run`` with ``settings``."""
    import json

    env = dict(os.environ)
    env.update({
        "ROBOSTREAM_TOPICS__PREFIX": settings.topics.prefix,
        "ROBOSTREAM_TOPICS__PARTITIONS": str(settings.topics.partitions),
        "ROBOSTREAM_MONGO__DATABASE": settings.mongo.database,
        "ROBOSTREAM_SCHEMA_REGISTRY__URL": settings.schema_registry.url,
        "ROBOSTREAM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "ROBOSTREAM_MONGO__URI": settings.mongo.uri,
        "ROBOSTREAM_S3__ENDPOINT": settings.s3.endpoint,
        "ROBOSTREAM_REDIS__URL": settings.redis.url,
        "ROBOSTREAM_SINKS__PORT": "0",
        "ROBOSTREAM_CONNECTORS": json.dumps([c.model_dump(mode="json") for c in settings.connectors]),
    })
    return env
