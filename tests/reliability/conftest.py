"""The reliability suite: its own stack (ports from 17000), figures, and RELIABILITY.md.

ROBOSTREAM_RELIABILITY_FULL=1 runs larger sizes (``sizes.py``); ROBOSTREAM_RELIABILITY_REPORT=path
writes RELIABILITY.md (and RELIABILITY.json beside it) from the figures the tests recorded.
ROBOSTREAM_KEEP_TEST_STACK=1 leaves the reliability stack running for the next run.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from robostream.config import Settings
from tests.conftest import SessionEnd, keep_stacks
from tests.reliability import cluster, report
from tests.reliability.cluster import ClusterStack
from tests.reliability.sizes import FULL
from tests.reliability.stack import ReliabilityStack, reliability_settings, start

#: The module whose tests run on the 3-broker cluster: last among the reliability tests, so that
#: the cluster's start-up (~25 s, mostly three JVMs) runs on a thread beside the tests before them.
CLUSTER_TESTS = "/reliability/test_broker_failures.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not FULL:  # `make test` keeps a smaller version of these faults; they run in `make reliability`
        full_only = [item for item in items if item.get_closest_marker("full_size_only")]
        if full_only:
            config.hook.pytest_deselected(items=full_only)
            items[:] = [item for item in items if not item.get_closest_marker("full_size_only")]
    here = [i for i, item in enumerate(items) if "/reliability/" in str(item.fspath)]
    for item in (items[i] for i in here):
        item.add_marker(pytest.mark.integration)
    ordered = sorted((items[i] for i in here), key=lambda item: CLUSTER_TESTS in str(item.fspath))
    for i, item in zip(here, ordered, strict=True):
        items[i] = item


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
def rel_stack(rel_settings: Settings, session_end: SessionEnd) -> Iterator[ReliabilityStack]:
    """The reliability stack with gateway, sinks and processors running, once per session."""
    started = time.monotonic()
    stack = start(rel_settings)
    report.FIGURES.timings["stack start"] = time.monotonic() - started
    yield stack
    if not keep_stacks():
        session_end.add(stack.state_dir, stack.down)


@pytest.fixture(scope="session", autouse=True)
def cluster_in_background(
    request: pytest.FixtureRequest, rel_settings: Settings, session_end: SessionEnd,
) -> Iterator[Future[ClusterStack]]:
    """The 3-broker cluster starting on a thread from the first reliability test on, if any test of
    CLUSTER_TESTS is to run (its ``cluster`` fixture waits for it); stopped at the session's end."""
    if not any(CLUSTER_TESTS in str(item.fspath) for item in request.session.items):
        yield Future()  # never awaited: no test uses the cluster
        return
    stack = cluster.new_stack()  # here, not on the thread: reading its settings changes os.environ
    started = time.monotonic()

    def start() -> ClusterStack:
        cluster.start(stack)
        report.FIGURES.timings["cluster start (in the background)"] = time.monotonic() - started
        return stack

    with ThreadPoolExecutor(1, thread_name_prefix="cluster-start") as pool:
        future = pool.submit(start)
        yield future
        with contextlib.suppress(BaseException):
            future.result()
    session_end.add(stack.state_dir, stack.kill_all)


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.monotonic()
    yield
    part = f"{request.node.module.__name__.rsplit('.', 1)[-1]}.py"
    report.FIGURES.timings[part] = report.FIGURES.timings.get(part, 0.0) + time.monotonic() - started
