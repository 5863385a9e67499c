"""``stack status`` judges the processors by their status file: fresh is healthy, else a reason."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from robostream.config import Settings
from robostream.processors.throughput import Throughput, write_status
from robostream.stack.servers import ProcessorService


def _service(tmp_path: Path, workers: int = 1) -> ProcessorService:
    settings = Settings()
    settings = settings.model_copy(update={
        "stack": settings.stack.model_copy(update={"state_dir": tmp_path}),
        "processors": settings.processors.model_copy(update={"status_interval_s": 10.0,
                                                             "workers": workers}),
    })
    service = ProcessorService(settings)
    service.status_files()[0].parent.mkdir(parents=True)
    return service


def _write(service: ProcessorService, path: Path | None = None, **changes: object) -> None:
    snap = Throughput("worker").snapshot() | changes
    write_status(path or service.status_path, snap)


def test_the_worker_is_started_with_the_status_file_its_health_is_read_from(tmp_path: Path) -> None:
    service = _service(tmp_path)
    command = service.command()
    assert command[command.index("--status-file") + 1] == str(service.status_path)


def test_a_fresh_status_file_of_a_running_worker_is_healthy(tmp_path: Path) -> None:
    service = _service(tmp_path)
    _write(service)
    assert service.problem() is None and service.healthy()


def test_no_status_file_is_unhealthy_and_says_so(tmp_path: Path) -> None:
    service = _service(tmp_path)
    assert not service.healthy()
    assert service.problem() == (f"no status file {service.status_path}: the worker has not got its "
                                 "partitions yet")


def test_a_status_file_not_written_for_three_intervals_is_stale(tmp_path: Path) -> None:
    service = _service(tmp_path)
    _write(service, time=time.time() - 31)
    assert not service.healthy()
    problem = service.problem() or ""
    assert "is stale: last written 31 s ago, expected every 10 s" in problem
    _write(service, time=time.time() - 25)  # two missed writes: still healthy
    assert service.healthy()


def test_a_fresh_file_left_by_a_dead_worker_is_unhealthy(tmp_path: Path) -> None:
    service = _service(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(gone.stdout)
    _write(service, pid=pid)
    assert service.problem() == (f"status file {service.status_path} was written by pid {pid}, "
                                 "which is not running")
    _write(service, pid=os.getpid())
    assert service.healthy()


def test_an_unreadable_status_file_is_unhealthy(tmp_path: Path) -> None:
    service = _service(tmp_path)
    service.status_path.write_text("{not json")
    assert (service.problem() or "").startswith(f"unreadable status file {service.status_path}")


def test_with_several_workers_each_one_s_status_file_must_be_fresh(tmp_path: Path) -> None:
    service = _service(tmp_path, workers=2)
    command = service.command()
    assert command[command.index("--status-file") + 1] == str(tmp_path / "processors" / "status")
    first, second = service.status_files()
    _write(service, first)
    assert service.problem() == f"no status file {second}: the worker has not got its partitions yet"
    _write(service, second)
    assert service.healthy()
