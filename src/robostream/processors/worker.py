"""Run processor workers: one Faust worker per process, ``N`` processes for ``--workers N``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from robostream.config import Settings
from robostream.errors import RobostreamError
from robostream.gctuning import freeze_startup_heap
from robostream.processors.metrics import MetricsServer
from robostream.schemas import DataType
from robostream.topics import TopicAdminError, cluster_not_ready, create_topics, list_topics, topic_for

log = logging.getLogger("robostream.processors")

#: How often a worker waiting for Kafka says why.
WAIT_LOG_EVERY_S = 10.0


class ProcessorStartError(RobostreamError):
    """The processors cannot start (Kafka, topics or the schema registry); says why."""


def wait_for_kafka(settings: Settings, *, poll_s: float = 1.0) -> None:
    """Block until Kafka can serve a worker that starts now, logging why not every
    :data:`WAIT_LOG_EVERY_S`. Faust's start-up does not survive a broker that is down or a
    partition without a leader (its first request there fails the worker), so a worker started
    during an outage or a leader election waits here instead of exiting."""
    said = -WAIT_LOG_EVERY_S
    while (reason := cluster_not_ready(settings)) is not None:
        if time.monotonic() - said >= WAIT_LOG_EVERY_S:
            log.warning("processors: waiting for Kafka: %s", reason)
            said = time.monotonic()
        time.sleep(poll_s)


def source_partitions(settings: Settings) -> int:
    """Create missing catalogue topics, then return the partitions of ``<prefix>.time_series``.

    The table's changelog must have as many partitions as its source topic.
    """
    try:
        report = create_topics(settings)
        if not report.ok:
            failed = ", ".join(f"{r.spec.name}: {r.error}" for r in report.results if r.error)
            raise ProcessorStartError(f"cannot create topics: {failed}")
        topics = {t.name: t for t in list_topics(settings)}
    except TopicAdminError as exc:
        raise ProcessorStartError(str(exc)) from None
    for data_type in (DataType.TIME_SERIES, DataType.IMAGES):
        listed = topics.get(topic_for(data_type, settings))
        if listed is None or listed.partitions is None:
            raise ProcessorStartError(f"topic {topic_for(data_type, settings)} does not exist")
    ts = topics[topic_for(DataType.TIME_SERIES, settings)].partitions
    images = topics[topic_for(DataType.IMAGES, settings)].partitions
    if ts != images:
        raise ProcessorStartError(
            f"{topic_for(DataType.TIME_SERIES, settings)} has {ts} partitions but "
            f"{topic_for(DataType.IMAGES, settings)} has {images}: they must match"
        )
    assert ts is not None
    return ts


def faust_worker(app: Any, loglevel: str) -> Any:
    """A ``faust.Worker`` for ``app`` logging at ``loglevel``, without Faust's progress spinner.

    At a level of WARNING or above Faust attaches the spinner as a DEBUG handler and sets the root
    logger to DEBUG, so every ``logger.debug`` in Faust, mode and aiokafka (one per message sent)
    builds a log record that no handler prints: about a third of a worker's CPU at live-sized
    batches (py-spy).
    """
    import faust

    from robostream.processors import faust_adapter as fa

    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    fa.drop_spinner(worker)
    return worker


def run_worker(
    settings: Settings, *, worker_name: str | None = None, status_file: Path | None = None,
    loglevel: str = "info",
) -> None:
    """Run one Faust worker in this process until SIGINT/SIGTERM."""
    from robostream.processors.app import ProcessorApp

    wait_for_kafka(settings)
    partitions = source_partitions(settings)
    name = worker_name or f"worker-{os.getpid()}"
    processor = ProcessorApp(settings, partitions=partitions, worker_name=name, status_file=status_file)
    try:
        processor.warm_up()
    except Exception as exc:
        raise ProcessorStartError(
            f"cannot register the derived schemas at {settings.schema_registry.url} ({exc}); is the "
            "schema registry running? (`robostream schema-registry`)"
        ) from None
    log.info("processors %s: app %s, %d partitions, topics %s and %s", name,
             settings.processors.app_id, partitions, processor.time_series_topic, processor.images_topic)
    p = settings.processors
    metrics = None
    if p.metrics_port is not None:
        metrics = MetricsServer(processor.metrics, p.app_id, p.metrics_host, p.metrics_port)
        metrics.start()
    worker = faust_worker(processor.app, loglevel)
    freeze_startup_heap()
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    finally:
        if metrics is not None:
            metrics.stop()
        processor.close()


def run_workers(count: int, *, status_dir: Path | None = None, loglevel: str = "info",
                metrics_port: int | None = None) -> int:
    """Start ``count`` worker processes (same consumer group) and wait; SIGTERM stops them all.

    With ``metrics_port``, worker N serves its metrics on ``metrics_port + N - 1`` (0: any free port).
    """
    children: list[subprocess.Popen[bytes]] = []
    for index in range(count):
        cmd = [sys.executable, "-m", "robostream.processors", "--workers", "1",
               "--name", f"worker-{index + 1}", "--loglevel", loglevel]
        if status_dir is not None:
            cmd += ["--status-file", str(status_dir / f"worker-{index + 1}.json")]
        env = None
        if metrics_port is not None:
            port = metrics_port + index if metrics_port else 0
            env = {**os.environ, "ROBOSTREAM_PROCESSORS__METRICS_PORT": str(port)}
        children.append(subprocess.Popen(cmd, env=env))

    def stop(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while any(child.poll() is None for child in children):
        time.sleep(0.5)
        if any(child.returncode not in (None, 0) for child in children):
            status = 1
    return status
