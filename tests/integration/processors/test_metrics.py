"""``GET /metrics`` of a processor worker (``processors.metrics_port``): records processed,
windows out, DLQ, assigned partitions and consumer lag per partition, moving as records arrive."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from robostream.config import Settings
from robostream.topics import topic_for
from tests.integration.processors.harness import Worker, produce, telemetry
from tests.prometheus import Scrape, scrape


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
