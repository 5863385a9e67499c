"""Fixtures of the Foxglove tests: the real sinks land a simulated robot's data, the service runs
on a free port in the test's event loop."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from robostream.config import Settings
from robostream.foxglove.service import FoxgloveBridge
from tests.integration.api.helpers import Landing


@pytest.fixture(scope="module")
def fox_settings(settings: Settings, stack: object) -> Settings:
    return settings.model_copy(update={
        "foxglove": settings.foxglove.model_copy(update={"port": 0, "discovery_interval_s": 0.2})})


@pytest.fixture(scope="module")
def landing(fox_settings: Settings) -> Iterator[Landing]:
    sinks = Landing(fox_settings)
    yield sinks
    sinks.close()


@pytest.fixture
def robot_id() -> str:
    return f"fox-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def bridge(fox_settings: Settings) -> AsyncIterator[FoxgloveBridge]:
    async with FoxgloveBridge(fox_settings) as running:
        yield running
