"""``robostream schema-registry``: the command serves the API until SIGTERM, then exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import requests

from robostream.config import Settings
from tests.conftest import free_port
from tests.integration.schema_registry.schemas import V1

COMMAND = "from robostream.cli.schema_registry_cmd import app; app()"


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the schema registry exited during start-up"
        try:
            if requests.get(f"{url}/", timeout=1).json() == {}:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"the schema registry did not answer on {url} within {timeout}s")


def test_command_serves_until_sigterm(
    registry_settings: Settings, new_topic: Callable[[], str]
) -> None:
    port = free_port()
    env = {**os.environ,
           "ROBOSTREAM_KAFKA__BOOTSTRAP": registry_settings.kafka.bootstrap,
           "ROBOSTREAM_SCHEMA_REGISTRY__TOPIC": new_topic()}
    process = subprocess.Popen(
        [sys.executable, "-c", COMMAND, "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        answer = requests.post(f"{url}/subjects/cli-value/versions", json={"schema": V1},
                               timeout=30)
        assert answer.json() == {"id": 1}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode(errors="replace")
    assert f"Schema registry listening on {url}" in output.decode()
