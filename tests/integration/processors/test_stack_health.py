"""``stack status`` on a real processors worker: healthy while it runs, unhealthy with a reason
while it is frozen (SIGSTOP), healthy again when it resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from robostream.config import Settings
from robostream.stack import Stack
from robostream.stack.servers import ProcessorService
from tests.integration.processors.harness import settings_env


class _Processors(ProcessorService):
    """The processors service on the test stack's Kafka and this test's registry and topics."""

    after = ()  # Kafka and the registry run already (not in this Stack)

    def env(self) -> dict[str, str]:
        return {**settings_env(self.settings), **super().env()}


def _stack_status(settings: Settings) -> subprocess.CompletedProcess[str]:
    """``robostream stack status`` as a user runs it, on this test's state folder."""
    env = {**settings_env(settings), "ROBOSTREAM_STACK__STATE_DIR": str(settings.state_dir),
           "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "robostream", "stack", "status"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_stack_status_of_the_processors_follows_their_status_file(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    made = make_settings("health", partitions=1)
    made = made.model_copy(update={"stack": made.stack.model_copy(update={"state_dir": tmp_path})})
    service = _Processors(made)
    stack = Stack(made, servers=[service])
    (started,) = stack.up(["processors"])  # waits until the worker wrote its first status
    record = stack.record("processors")
    assert record is not None
    try:
        assert started.state == "healthy"
        os.kill(record.pid, signal.SIGSTOP)  # frozen: alive, but its status file goes stale
        assert _wait(lambda: stack.status_of(service).state == "unhealthy", 30)
        shown = _stack_status(made)
        assert shown.returncode == 1 and "processors: status file" in shown.stderr, shown.stderr
        assert "is stale: last written" in shown.stderr
        os.kill(record.pid, signal.SIGCONT)
        assert _wait(lambda: stack.status_of(service).state == "healthy", 30)
    finally:
        os.kill(record.pid, signal.SIGCONT)
        stack.down(["processors"])
    assert stack.status_of(service).state == "stopped"
