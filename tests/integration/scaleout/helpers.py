"""Scale-out helpers: `robostream sink run` processes, the consumer group as Kafka sees it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from robostream.config import Settings
from tests.conftest import ROOT
from tests.integration.processors.harness import settings_env


class SinkProcess:
    """One ``robostream sink run`` worker process (``python -m robostream sink run``)."""

    def __init__(self, settings: Settings, name: str, folder: Path) -> None:
        self.name = name
        self.log_file = folder / f"{name}.log"
        env = {
            **settings_env(settings),
            "ROBOSTREAM_MONGO__DATABASE": settings.mongo.database,
            "ROBOSTREAM_SINKS__PORT": "0",
            "ROBOSTREAM_CONNECTORS": json.dumps([c.model_dump(mode="json") for c in settings.connectors]),
        }
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "robostream", "sink", "run", "--log-level", "INFO"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )

    def rest_url(self) -> str | None:
        """The REST API's URL, from the worker's log line (it listens on a free port)."""
        match = re.search(r"sink REST API on (http://\S+)", self.log_file.read_text(errors="replace"))
        return match.group(1) if match else None

    def partitions(self, connector: str) -> set[int]:
        """Partitions its task holds, as ``GET /connectors/{name}/status`` reports them."""
        url = self.rest_url()
        if url is None:
            return set()
        with urllib.request.urlopen(f"{url}/connectors/{connector}/status", timeout=5) as response:
            status = json.loads(response.read())
        return {p["partition"] for task in status["tasks"] for p in task.get("lag", {}).get("partitions", [])}

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no leave."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (lands and commits what it holds), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def assignment(bootstrap: str, group: str, topic: str) -> list[set[int]]:
    """Partitions of ``topic`` per member of ``group``, as ``kafka-consumer-groups --describe``
    shows them (empty while the group rebalances)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if described.state != ConsumerGroupState.STABLE:
        return []
    return [{tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
            for m in described.members]


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               check: Callable[[], None] | None = None, interval: float = 0.3) -> Any:
    """Poll ``condition`` until truthy (``check`` raises early, e.g. on a dead process)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if check is not None:
            check()
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
