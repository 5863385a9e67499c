"""``GET /metrics`` of a processor worker (``processors.metrics_port``): records processed,
windows out, DLQ, assigned partitions and consumer lag per partition, moving as records arrive."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from robostream.config import Settings
from robostream.topics import topic_for
from tests.conftest import ROOT, free_port
from tests.integration.processors.harness import Worker, produce, settings_env, telemetry
from tests.prometheus import Scrape, scrape


def scrape_when(url: str, worker: Worker, check: Callable[[Scrape], bool], timeout: float = 60) -> Scrape:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise AssertionError(f"{worker.name} exited:\n{worker.tail()}")
        try:
            last = scrape(url)
        except OSError:  # not listening yet
            last = None
        if last is not None and check(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"metrics never matched; last scrape:\n{last.text if last else None}")


def test_a_worker_serves_its_counters_and_lag(
    make_settings: Callable[..., Settings], workers: Callable[[Settings, str], Worker], unique: str,
) -> None:
    settings = make_settings("m", partitions=2, metrics_port=free_port())
    url = f"http://127.0.0.1:{settings.processors.metrics_port}/metrics"
    worker = workers(settings, "worker-1")
    worker.wait_for(lambda s: len(s["assigned"]) == 4)  # time_series and images, 2 partitions each
    labels = {"worker": "worker-1"}
    before = scrape_when(url, worker, lambda m: m.value("robostream_processors_assigned_partitions") == 4)
    assert before.value("robostream_processors_telemetry_records_total", **labels) == 0
    assert before.value("robostream_processors_windows_out_total", **labels) == 0
    assert before.value("robostream_processors_dlq_records_total", **labels) == 0

    produce(settings, telemetry("robot_001", f"m-{unique}", time.time() - 30, 40))
    after = scrape_when(url, worker, lambda m: m.value("robostream_processors_telemetry_records_total") == 40
                        and m.value("robostream_processors_windows_out_total") > 0
                        and m.value("robostream_processors_consumer_lag") == 0)
    assert after.value("robostream_processors_telemetry_points_total", **labels) == 400
    lags = after.labels("robostream_processors_consumer_lag")
    assert {(lag["topic"], lag["partition"]) for lag in lags} == {
        (topic_for(t, settings), str(p)) for t in ("time_series", "images") for p in range(2)}
    assert {lag["group"] for lag in lags} == {settings.processors.app_id}
    totals = worker.status()["totals"]  # the status file and the metrics tell the same story
    assert after.value("robostream_processors_windows_out_total") <= totals["windows_out"]


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(50):
        first = free_port()
        try:
            for offset in range(1, count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        return first
    raise AssertionError("no consecutive free ports")


def test_each_worker_of_workers_n_serves_on_its_own_port(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = make_settings("w", partitions=2, metrics_port=free_ports(2))
    first = settings.processors.metrics_port
    assert first is not None
    log = (tmp_path / "workers.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "robostream.processors", "--workers", "2",
                             "--status-file", str(tmp_path / "status")],
                            env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 90
        seen: dict[str, float] = {}
        while time.monotonic() < deadline and (len(seen) < 2 or sum(seen.values()) != 4):
            assert proc.poll() is None, (tmp_path / "workers.log").read_text()
            for port in (first, first + 1):
                try:
                    metrics = scrape(f"http://127.0.0.1:{port}/metrics")
                except OSError:
                    continue
                for labels in metrics.labels("robostream_processors_assigned_partitions"):
                    seen[f"{port}:{labels['worker']}"] = metrics.value(
                        "robostream_processors_assigned_partitions", worker=labels["worker"])
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert set(seen) == {f"{first}:worker-1", f"{first + 1}:worker-2"}
    assert sum(seen.values()) == 4  # the two workers split time_series and images, 2 partitions each
