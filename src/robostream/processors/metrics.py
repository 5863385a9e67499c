"""Prometheus metrics of a processor worker, served by a small HTTP server of their own.

The processors have no HTTP server (Faust's web server is off unless ``processors.web_port`` is
set, and several worker processes would fight over its one port), so with
``processors.metrics_port`` set each worker serves ``GET /metrics`` from prometheus-client's
threaded server: worker N of ``robostream process --workers`` on ``metrics_port + N - 1``. The
server runs on its own thread and reads the worker's :class:`Throughput` counters at scrape time,
so it answers even while the event loop is busy, and costs the data path nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from robostream.gctuning import GC_PAUSES
from robostream.processors.throughput import Throughput

log = logging.getLogger("robostream.processors")

PREFIX = "robostream_processors"
#: Throughput counter -> (metric name without prefix and _total, help).
COUNTERS = {
    "telemetry_records": ("telemetry_records", "time_series records processed."),
    "telemetry_points": ("telemetry_points", "Telemetry samples (points) processed."),
    "windows_out": ("windows_out", "Aggregation windows (1 s/1 min/1 h stats) written."),
    "buckets_out": ("buckets_out", "Hourly telemetry buckets written (processors.bucketed_output)."),
    "frames_in": ("frames_in", "Camera frames read from the images topic."),
    "frames_out": ("frames_out", "Compacted frame batches written."),
    "dlq": ("dlq_records", "Records sent to the dead letter queue."),
    "duplicates": ("duplicates", "Samples dropped as duplicates (already seen)."),
    "late_samples": ("late_samples", "Samples that arrived after their window closed."),
    "pool_restarts": ("pool_restarts", "Frame-encoding process pools replaced after they died."),
}


class ProcessorCollector(Collector):
    """A worker's throughput counters, assigned partitions and consumer lag."""

    def __init__(self, throughput: Throughput, app_id: str) -> None:
        self.throughput = throughput
        self.app_id = app_id

    def collect(self) -> Iterator[Metric]:
        t = self.throughput
        counters = dict(t.counters)  # one C-level copy: the event loop keeps counting meanwhile
        for key, (name, text) in COUNTERS.items():
            family = CounterMetricFamily(f"{PREFIX}_{name}", text, labels=["worker"])
            family.add_metric([t.worker], counters.get(key, 0))
            yield family
        assigned = GaugeMetricFamily(f"{PREFIX}_assigned_partitions", "Source partitions this worker "
                                     "owns.", labels=["worker"])
        assigned.add_metric([t.worker], len(t.assigned))
        yield assigned
        lag = GaugeMetricFamily(f"{PREFIX}_consumer_lag", "Records in a source partition past the "
                                "group's committed offset (refreshed every processors.status_interval_s).",
                                labels=["worker", "group", "topic", "partition"])
        for (topic, partition), value in sorted(dict(t.lag).items()):
            lag.add_metric([t.worker, self.app_id, topic, str(partition)], value)
        yield lag


class MetricsServer:
    """``GET /metrics`` of one worker on ``host:port`` (port 0: a free port; see :attr:`port`)."""

    def __init__(self, throughput: Throughput, app_id: str, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProcessorCollector(throughput, app_id))
        self.registry.register(GC_PAUSES)
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = int(self._server.server_address[1])
        log.info("processors: Prometheus metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
