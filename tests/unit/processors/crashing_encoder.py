"""Pool-process side of the encoder-crash tests: a ``run_job`` that dies or waits on cue.

Imported by the spawned pool processes (through the initializer), never by the tests' own process
for anything but the initializer's name.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from robostream.processors.compaction import jobs
from robostream.processors.compaction.jobs import CompactionJob, CompactionResult

#: A job of this camera kills its process with SIGKILL, every time.
POISON = "poison"
#: A job of this camera writes ``<pid>.running`` in the cue folder and waits for ``release`` there.
HOLD = "hold"


def initializer(parent_pid: int, cues: str) -> None:
    """The production initializer, then ``jobs.run_job`` replaced by one that obeys the cues."""
    jobs.pool_initializer(parent_pid)
    real = jobs.run_job

    def run_job(job: CompactionJob) -> CompactionResult:
        if job.camera_id == POISON:
            os.kill(os.getpid(), signal.SIGKILL)
        if job.camera_id == HOLD:
            (Path(cues) / f"{os.getpid()}.running").touch()
            deadline = time.monotonic() + 30
            while not (Path(cues) / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return real(job)

    jobs.run_job = run_job  # type: ignore[assignment]
