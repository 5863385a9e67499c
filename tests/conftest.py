"""Shared fixtures. Integration and e2e tests get one real local stack per test session.

The test stack runs beside a developer's stack: its own ports (below) and its own state folder
(``.robostream/test-stack-<port>``). ROBOSTREAM_KEEP_TEST_STACK=1 leaves it running after the run
(the next run reuses it: fast iterations); ROBOSTREAM_TEST_PORT_OFFSET=N shifts every port so a
second checkout can test at the same time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from robostream.config import Settings, load_settings
from tests.containers import stack_mode

ROOT = Path(__file__).resolve().parents[1]

#: Shift every test-stack port by this much (0 or 1000) so a second checkout can test at the same
#: time. Every port, SeaweedFS's gRPC ports (http port + 10000) included, stays below 32768: above
#: that, Linux hands out ephemeral ports to outgoing connections and a listener may find its port
#: taken.
PORT_OFFSET = int(os.environ.get("ROBOSTREAM_TEST_PORT_OFFSET", "0"))
assert PORT_OFFSET in (0, 1000), "ROBOSTREAM_TEST_PORT_OFFSET must be 0 or 1000"


def stack_env(base: int) -> dict[str, str]:
    """ROBOSTREAM_* variables for a stack whose ports start at ``base`` (e.g. 19000)."""
    p = base + PORT_OFFSET
    return {
        "ROBOSTREAM_CONFIG": str(ROOT / "config.yaml"),
        "ROBOSTREAM_KAFKA__BOOTSTRAP": f"127.0.0.1:{p + 92}",
        "ROBOSTREAM_STACK__KAFKA_CONTROLLER_PORT": str(p + 93),
        "ROBOSTREAM_MONGO__URI": f"mongodb://127.0.0.1:{p + 17}/?directConnection=true&retryWrites=false",
        "ROBOSTREAM_S3__ENDPOINT": f"http://127.0.0.1:{p + 333}",
        "ROBOSTREAM_STACK__SEAWEED_PORT_BASE": str(p + 340),
        "ROBOSTREAM_REDIS__URL": f"redis://127.0.0.1:{p + 379}/0",
        "ROBOSTREAM_SCHEMA_REGISTRY__URL": f"http://127.0.0.1:{p + 81}",
    }


#: Environment of the test stack; exported so CLI subprocesses started by tests see it too.
TEST_STACK_ENV = {
    **stack_env(19000),
    "ROBOSTREAM_STACK__STATE_DIR": str(ROOT / ".robostream" / f"test-stack-{19000 + PORT_OFFSET}"),
    "ROBOSTREAM_STACK__KAFKA_HEAP": "1g",
}


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``env`` for the block (settings are read from it)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keep_stacks() -> bool:
    """ROBOSTREAM_KEEP_TEST_STACK=1: the session leaves its stacks running for the next run."""
    return os.environ.get("ROBOSTREAM_KEEP_TEST_STACK") == "1"


class SessionEnd:
    """What the session stops when it ends: every stack at once, each with its own ``down`` (SIGTERM
    and wait: Kafka's controlled shutdown spares the next start a log recovery). Stopped by their
    fixtures, the test, reliability, cluster and throwaway stacks went down one after another, all
    in the last test's teardown."""

    def __init__(self) -> None:
        self._stops: dict[Path, Callable[[], object]] = {}

    def add(self, state_dir: Path, stop: Callable[[], object]) -> None:
        """Call ``stop`` when the session ends, beside the others; once per stack (``state_dir``:
        two fixtures may hand in the same stack)."""
        self._stops.setdefault(state_dir, stop)

    def run(self) -> str:
        """Call every ``stop`` on its own thread; raise the first error once all have returned.
        Returns what took how long (one line, for the terminal)."""
        if not self._stops:
            return ""
        began = time.monotonic()
        with ThreadPoolExecutor(len(self._stops), thread_name_prefix="session-end") as pool:
            futures = {state_dir.name: pool.submit(_timed, stop) for state_dir, stop in self._stops.items()}
        errors = [error for future in futures.values() if (error := future.exception()) is not None]
        if errors:
            raise errors[0]
        each = ", ".join(f"{name} {future.result():.1f} s" for name, future in futures.items())
        return f"stacks stopped side by side in {time.monotonic() - began:.1f} s: {each}"


def _timed(stop: Callable[[], object]) -> float:
    began = time.monotonic()
    stop()
    return time.monotonic() - began


@pytest.fixture(scope="session", autouse=True)
def session_end(pytestconfig: pytest.Config) -> Iterator[SessionEnd]:
    """Where session fixtures leave the stacks they started (set up first, so it ends last)."""
    end = SessionEnd()
    yield end
    said = end.run()
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if said and terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            terminal.write_line(said)


def pytest_configure(config: pytest.Config) -> None:
    stack_mode()  # ROBOSTREAM_TEST_STACK is local (default) or containers; anything else stops here


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings pointing at the test stack (servers not necessarily started). With
    ROBOSTREAM_TEST_STACK=containers: at containers started here (tests/containers.py)."""
    containers = None
    if stack_mode() == "containers":
        from tests.containers import start_containers

        containers = start_containers()  # skips, saying why, where no Docker engine answers
        TEST_STACK_ENV.update(containers.env)  # subprocesses of the tests get it too
    try:
        with environment(TEST_STACK_ENV):
            yield load_settings()
    finally:
        if containers is not None:
            containers.stop()


@pytest.fixture(scope="session")
def stack(settings: Settings, session_end: SessionEnd) -> Iterator[object]:
    """The running test stack (Kafka, SecantusDB, SeaweedFS, Redis), started once per session."""
    if stack_mode() == "containers":
        yield None  # the settings fixture started the containers
        return
    from robostream.stack import Stack

    test_stack = Stack(settings)
    test_stack.up()
    yield test_stack
    if not keep_stacks():
        session_end.add(test_stack.state_dir, test_stack.down)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: object, settings: Settings) -> str:
    """bootstrap.servers of the running test broker."""
    return settings.kafka.bootstrap
