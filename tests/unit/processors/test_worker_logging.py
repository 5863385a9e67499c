"""A processors worker logs at the level asked for: Faust's progress spinner would set the root
logger to DEBUG, and every debug call in Faust, mode and aiokafka (one per message sent) would
then build a log record that nobody prints."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from robostream.processors.worker import faust_worker


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("loglevel", ["warning", "info"])
def test_the_worker_does_not_turn_on_debug_logging(root_logging: None, loglevel: str) -> None:
    app = faust.App("robostream-logging-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    worker = faust_worker(app, loglevel)
    worker._setup_logging()  # what execute_from_commandline() does first
    assert logging.getLogger().level == logging.getLevelName(loglevel.upper())
    assert not logging.getLogger("faust.topics").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
