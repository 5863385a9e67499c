"""Processor integration tests: a schema registry of their own, unique topics and app ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from robostream.config import Settings
from robostream.topics import create_topics
from tests.integration.processors.harness import Registry, Worker


@pytest.fixture(scope="module")
def registry(stack: object, settings: Settings) -> Iterator[Registry]:
    running = Registry(settings)
    yield running
    running.stop()


@pytest.fixture
def make_settings(settings: Settings, registry: Registry, unique: str) -> Callable[..., Settings]:
    """Settings on fresh topics ``pr<unique><tag>.*`` with their own app id; topics created."""

    def make(tag: str = "", partitions: int = 2, **processors: object) -> Settings:
        prefix = f"pr{unique}{tag}"
        tuned = {"app_id": f"proc-{prefix}", "idle_s": 1.0, "status_interval_s": 0.5,
                 "session_timeout_s": 6.0, "batch_within_s": 0.1, "segment_gap_s": 0.5, **processors}
        made = settings.model_copy(update={
            "topics": settings.topics.model_copy(update={"prefix": prefix, "partitions": partitions}),
            "schema_registry": settings.schema_registry.model_copy(update={"url": registry.url}),
            "processors": settings.processors.model_copy(update=tuned),
        })
        assert create_topics(made).ok
        return made

    return make


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Settings, str], Worker]]:
    """Start workers; every one still running is stopped after the test."""
    started: list[Worker] = []

    def start(settings: Settings, name: str) -> Worker:
        worker = Worker(settings, name, tmp_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
