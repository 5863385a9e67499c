"""Kill -9 the simulator mid-run and start it again with the same spool: what the first process
had spooled but not seen acked is resent, so every seq of its session reaches Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from robostream.config import Settings
from robostream_sdk import Spool
from tests.conftest import TEST_STACK_ENV

from .conftest import GatewayRunner, landed, wait_for

SIMULATE = "from robostream.cli.simulate_cmd import app; app()"


class Simulator:
    """``robostream simulate`` in a subprocess, its log collected by a thread."""

    def __init__(self, gateway_url: str, spool: Path, tokens_file: Path, duration_s: float) -> None:
        env = {**os.environ, **TEST_STACK_ENV, "ROBOSTREAM_SIMULATOR__TOKENS_FILE": str(tokens_file)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", SIMULATE, "--robots", "1", "--duration", str(duration_s), "--no-media",
             "--gateway", gateway_url, "--spool-dir", str(spool), "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code


def test_a_killed_simulator_resends_its_spool_when_it_starts_again(
    sd_settings: Settings, gateway: GatewayRunner, tmp_path: Path, tokens_file: Path
) -> None:
    spool = tmp_path / "spool"
    first = Simulator(gateway.url, spool, tokens_file, duration_s=120)
    try:
        wait_for(lambda: "Batch sent" in first.log, 60, "the first simulator to stream")
        time.sleep(2)
        gateway.stop()  # from now on nothing is acked: batches pile up in the spool
        time.sleep(3)
        first.kill()
    finally:
        if first.process.poll() is None:
            first.kill()
    assert "Robot robot_001 connected" in first.log and "Streaming started" in first.log

    left = Spool(spool / "robot_001")
    pending = left.pending()
    left.close()
    assert len(pending) >= 5, "the killed process left unacked batches"
    session = pending[-1].session_id
    spooled_up_to = max(e.last_seq for e in pending)

    gateway.start()
    second = Simulator(gateway.url, spool, tokens_file, duration_s=2)
    code = second.wait(90)
    assert code == 0, second.log
    assert "from a previous run will be resent" in second.log
    after = Spool(spool / "robot_001")
    assert not after.pending() and not list((spool / "robot_001").glob("*.acks"))
    after.close()

    kafka = landed(sd_settings)
    key = f"robot_001/{session}"
    assert kafka.missing(key) == [], "a gap in the killed session's seqs"
    assert max(kafka.seqs[key]) >= spooled_up_to
    later = [k for k in kafka.seqs if k.startswith("robot_001/") and k != key]
    assert len(later) == 1 and kafka.missing(later[0]) == []
