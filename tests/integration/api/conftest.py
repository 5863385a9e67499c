"""Fixtures of the API tests: each module gets its own Mongo database (``api_<tag>``), its own
robot/session ids, the real sinks to land data and a running API on a free port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from robostream.config import Settings
from tests.integration.api.helpers import Landing, RunningApi


@pytest.fixture(scope="module")
def tag() -> str:
    """A unique suffix for this module's database, robots and sessions."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def api_settings(settings: Settings, stack: object, tag: str) -> Iterator[Settings]:
    """The test stack's settings with this module's database; reads open (no tokens)."""
    configured = settings.model_copy(update={
        "mongo": settings.mongo.model_copy(update={"database": f"api_{tag}"}),
        "api": settings.api.model_copy(update={"port": 0, "anonymous_read": True}),
    })
    yield configured
    from pymongo import MongoClient

    with MongoClient(configured.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(configured.mongo.database)


@pytest.fixture(scope="module")
def landing(api_settings: Settings) -> Iterator[Landing]:
    sinks = Landing(api_settings)
    yield sinks
    sinks.close()


@pytest.fixture(scope="module")
def api(api_settings: Settings) -> Iterator[RunningApi]:
    with RunningApi(api_settings) as running:
        yield running


@pytest.fixture
def ids(tag: str, unique: str) -> dict[str, Any]:
    """A robot and session of this test only (Redis keys never collide)."""
    return {"robot": f"rb-{tag}", "session": f"s-{unique}"}
