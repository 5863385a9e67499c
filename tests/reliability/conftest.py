"""The reliability suite: its own stack (ports from 17000), figures, and RELIABILITY.md.

ROBOSTREAM_RELIABILITY_FULL=1 runs larger sizes (``sizes.py``); ROBOSTREAM_RELIABILITY_REPORT=path
writes RELIABILITY.md (and RELIABILITY.json beside it) from the figures the tests recorded.
ROBOSTREAM_KEEP_TEST_STACK=1 leaves the reliability stack running for the next run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from robostream.config import Settings
from tests.reliability import report
from tests.reliability.stack import ReliabilityStack, reliability_settings, start


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


STARTED = time.monotonic()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("ROBOSTREAM_RELIABILITY_REPORT")
    report.FIGURES.timings["whole session (pytest)"] = time.monotonic() - STARTED
    if target and (report.FIGURES.faults or report.FIGURES.bad_input or report.FIGURES.security):
        report.write(Path(target), report.FIGURES)


@pytest.fixture(scope="session")
def rel_settings() -> Settings:
    """Settings of the reliability stack."""
    return reliability_settings()


@pytest.fixture(scope="session")
def rel_stack(rel_settings: Settings) -> Iterator[ReliabilityStack]:
    """The reliability stack with gateway, sinks and processors running, once per session."""
    started = time.monotonic()
    stack = start(rel_settings)
    report.FIGURES.timings["stack start"] = time.monotonic() - started
    yield stack
    if os.environ.get("ROBOSTREAM_KEEP_TEST_STACK") != "1":
        stack.down()


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.monotonic()
    yield
    part = f"{request.node.module.__name__.rsplit('.', 1)[-1]}.py"
    report.FIGURES.timings[part] = report.FIGURES.timings.get(part, 0.0) + time.monotonic() - started
