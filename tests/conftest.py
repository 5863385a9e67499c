"""Shared fixtures. Integration and e2e tests get one real local stack per test session.

The test stack runs beside a developer's stack: its own ports (below) and its own state folder
(``.robostream/test-stack-<port>``). ROBOSTREAM_KEEP_TEST_STACK=1 leaves it running after the run
(the next run reuses it: fast iterations); ROBOSTREAM_TEST_PORT_OFFSET=N shifts every port so a
second checkout can test at the same time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from robostream.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]

#: Shift every test-stack port by this much (two checkouts can then test side by side).
_OFFSET = int(os.environ.get("ROBOSTREAM_TEST_PORT_OFFSET", "0"))


def _port(port: int) -> int:
    return port + _OFFSET


#: Environment of the test stack; exported so CLI subprocesses started by tests see it too.
TEST_STACK_ENV = {
    "ROBOSTREAM_CONFIG": str(ROOT / "config.yaml"),
    "ROBOSTREAM_STACK__STATE_DIR": str(ROOT / ".robostream" / f"test-stack-{_port(29000)}"),
    "ROBOSTREAM_KAFKA__BOOTSTRAP": f"127.0.0.1:{_port(29092)}",
    "ROBOSTREAM_STACK__KAFKA_CONTROLLER_PORT": str(_port(29093)),
    "ROBOSTREAM_STACK__KAFKA_HEAP": "1g",
    "ROBOSTREAM_MONGO__URI": f"mongodb://127.0.0.1:{_port(29017)}/?directConnection=true",
    "ROBOSTREAM_S3__ENDPOINT": f"http://127.0.0.1:{_port(29333)}",
    "ROBOSTREAM_STACK__SEAWEED_PORT_BASE": str(_port(29340)),
    "ROBOSTREAM_REDIS__URL": f"redis://127.0.0.1:{_port(29379)}/0",
    "ROBOSTREAM_SCHEMA_REGISTRY__URL": f"http://127.0.0.1:{_port(29081)}",
}


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings pointing at the test stack (servers not necessarily started)."""
    saved = {k: os.environ.get(k) for k in TEST_STACK_ENV}
    os.environ.update(TEST_STACK_ENV)
    try:
        yield load_settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[object]:
    """The running test stack (Kafka, SecantusDB, SeaweedFS, Redis), started once per session."""
    from robostream.stack import Stack

    test_stack = Stack(settings)
    test_stack.up()
    yield test_stack
    if os.environ.get("ROBOSTREAM_KEEP_TEST_STACK") != "1":
        test_stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: object, settings: Settings) -> str:
    """bootstrap.servers of the running test broker."""
    return settings.kafka.bootstrap
