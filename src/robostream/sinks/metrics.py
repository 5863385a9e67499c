"""Prometheus metrics of a sink worker (``GET /metrics`` on its REST port).

Read at scrape time from the tasks' live status (:class:`~robostream.sinks.status.TaskStatus`)
and error handlers, so the data path pays nothing for them. Counters are per task: a restarted
task starts again from 0, which Prometheus' ``rate()`` treats as a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from robostream.gctuning import GC_PAUSES
from robostream.sinks.connector import Connector
from robostream.sinks.status import State
from robostream.sinks.task import group_id

PREFIX = "robostream_sinks"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class SinkCollector(Collector):
    """Every metric of the worker's connectors and tasks."""

    def __init__(self, connectors: Mapping[str, Connector]) -> None:
        self.connectors = connectors

    def collect(self) -> Iterator[Metric]:
        labels = ["connector", "task"]
        written = CounterMetricFamily(f"{PREFIX}_records_written", "Records written to the store "
                                      "(rate() = records/s).", labels=labels)
        failed = CounterMetricFamily(f"{PREFIX}_records_failed", "Poison records (conversion or "
                                     "write errors) skipped or failing the task.", labels=labels)
        dlq = CounterMetricFamily(f"{PREFIX}_dlq_records", "Records copied to the dead letter queue.",
                                  labels=labels)
        batches = CounterMetricFamily(f"{PREFIX}_batches", "Batches written and flushed.", labels=labels)
        commits = CounterMetricFamily(f"{PREFIX}_commits", "Offset commits.", labels=labels)
        running = GaugeMetricFamily(f"{PREFIX}_task_state", "1 for the task's current state.",
                                    labels=[*labels, "state"])
        lag = GaugeMetricFamily(f"{PREFIX}_consumer_lag", "Records in the partition past the group's "
                                "committed offset (high watermark - committed).",
                                labels=["connector", "group", "topic", "partition"])
        for name, connector in sorted(self.connectors.items()):
            for task in list(connector.tasks):
                snap = task.status.snapshot()
                values = [name, str(task.task_id)]
                metrics = snap["metrics"]
                written.add_metric(values, metrics["records_written"])
                failed.add_metric(values, metrics["records_failed"])
                dlq.add_metric(values, task.errors.dlq_records)
                batches.add_metric(values, metrics["batches"])
                commits.add_metric(values, metrics["commits"])
                for state in State:
                    running.add_metric([*values, state.value], 1.0 if snap["state"] == state.value else 0.0)
                for part in snap["lag"]["partitions"]:
                    if part["lag"] is not None:
                        lag.add_metric([name, group_id(name), part["topic"], str(part["partition"])],
                                       part["lag"])
        yield from (written, failed, dlq, batches, commits, running, lag)


def sink_registry(connectors: Mapping[str, Connector]) -> CollectorRegistry:
    """A registry of its own holding the worker's :class:`SinkCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SinkCollector(connectors))
    registry.register(GC_PAUSES)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition."""
    return generate_latest(registry)
