"""A connector: its configuration resolved against the topic catalogue, and its tasks.

``topics`` entries are catalogue names relative to ``topics.prefix`` (``time_series``,
``sessions``, ``derived.stats_1m`` ...), checked against :func:`robostream.topics.catalogue`;
``topics_regex`` becomes a librdkafka pattern subscription (``^...``) with ``${prefix}``
replaced by the escaped prefix. Each task is a :class:`~robostream.sinks.task.SinkTask` with its
own consumer in group ``connect-<name>`` and its own sink instance.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from typing import Any

from robostream.config import ConnectorSettings, Settings
from robostream.errors import RobostreamError
from robostream.schemas import ConfluentSchemaResolver, SchemaIdResolver
from robostream.sinks.base import Sink
from robostream.sinks.convert import Converter
from robostream.sinks.errors import ErrorHandler
from robostream.sinks.status import State, TaskStatus, connector_state
from robostream.sinks.task import SinkTask, group_id
from robostream.topics import catalogue
from robostream.topics.catalog import prefix_of

SinkFactory = Callable[[Settings], Sink]
ResolverFactory = Callable[[Settings], SchemaIdResolver]


class ConnectorConfigError(RobostreamError, ValueError):
    """A connector refers to a topic that is not in the catalogue, or cannot be built."""


def catalogue_names(settings: Settings) -> dict[str, str]:
    """Catalogue topics under the prefix: ``{"time_series": "robot.time_series", ...}``."""
    prefix = prefix_of(settings) + "."
    return {spec.name[len(prefix):]: spec.name for spec in catalogue(settings)
            if spec.name.startswith(prefix)}


def resolve_topic(name: str, settings: Settings) -> str:
    """The full topic name of a catalogue name (``time_series`` -> ``robot.time_series``)."""
    names = catalogue_names(settings)
    if name in names:
        return names[name]
    if name in names.values():
        return name
    raise ConnectorConfigError(
        f"unknown topic {name!r}: expected one of {', '.join(sorted(names))} "
        "(names under topics.prefix)"
    )


def subscription(connector: ConnectorSettings, settings: Settings) -> list[str]:
    """What the tasks subscribe to: full topic names, or one ``^regex`` pattern."""
    if connector.topics_regex is not None:
        pattern = connector.topics_regex.replace("${prefix}", re.escape(prefix_of(settings)))
        return [pattern if pattern.startswith("^") else "^" + pattern]
    return [resolve_topic(name, settings) for name in connector.topics]


def dlq_topic_name(connector: ConnectorSettings, settings: Settings) -> str | None:
    """The resolved DLQ topic (``errors.deadletterqueue.topic.name``), or ``None``."""
    return None if connector.dlq_topic is None else resolve_topic(connector.dlq_topic, settings)


def default_sink_factory(kind: str) -> SinkFactory:
    """The sink class of a connector kind: ``mongo``, ``s3`` or ``redis``."""
    if kind == "mongo":
        from robostream.sinks.mongo import MongoSink

        return MongoSink
    if kind == "s3":
        from robostream.sinks.s3 import S3Sink

        return S3Sink
    if kind == "redis":
        from robostream.sinks.redis import RedisSink

        return RedisSink
    raise ConnectorConfigError(f"unknown connector kind {kind!r}: expected mongo, s3 or redis")


def registry_resolver(settings: Settings) -> SchemaIdResolver:
    """Look schemas up by id in ``schema_registry.url`` (never registers)."""
    return ConfluentSchemaResolver(settings.schema_registry.url, auto_register=False)


def worker_id(settings: Settings) -> str:
    """``host:port`` of this worker, as Kafka Connect names workers."""
    return f"{socket.gethostname()}:{settings.sinks.port}"


class Connector:
    """A configured connector and its running tasks (threads)."""

    def __init__(
        self,
        config: ConnectorSettings,
        settings: Settings,
        *,
        sink_factory: SinkFactory | None = None,
        resolver_factory: ResolverFactory = registry_resolver,
        worker: str | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.subscription = subscription(config, settings)
        self.dlq_topic = dlq_topic_name(config, settings)
        self._sink_factory = sink_factory or default_sink_factory(config.kind)
        self._resolver_factory = resolver_factory
        self.worker_id = worker or worker_id(settings)
        self.tasks: list[SinkTask] = []
        self._threads: list[threading.Thread] = []
        self.user_paused = False
        self.trace: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def build_task(self, task_id: int) -> SinkTask:
        """A new task ``task_id`` (not started)."""
        return SinkTask(
            self.config, self.settings, task_id, self.subscription,
            sink=self._sink_factory(self.settings),
            converter=Converter(self.settings, self._resolver_factory(self.settings)),
            errors=ErrorHandler(self.config, self.settings, task_id, self.dlq_topic,
                                executing_class=f"robostream.sinks.{self.config.kind}"),
            status=TaskStatus(task_id, self.worker_id),
        )

    def start(self) -> None:
        """Start ``tasks`` task threads."""
        for task_id in range(self.config.tasks):
            self._start_task(self.build_task(task_id))

    def _start_task(self, task: SinkTask) -> None:
        thread = threading.Thread(target=task.run, name=f"connect-{self.name}-{task.task_id}",
                                  daemon=True)
        if task.task_id < len(self.tasks):
            self.tasks[task.task_id] = task
            self._threads[task.task_id] = thread
        else:
            self.tasks.append(task)
            self._threads.append(thread)
        if self.user_paused:
            task.pause()
        thread.start()

    def restart_task(self, task_id: int) -> None:
        """Replace a task (e.g. a FAILED one) with a fresh one."""
        old = self.tasks[task_id]
        old.stop()
        self._threads[task_id].join(timeout=60)
        self._start_task(self.build_task(task_id))

    def pause(self) -> None:
        """Pause every task (PUT /connectors/{name}/pause)."""
        self.user_paused = True
        for task in self.tasks:
            task.pause()

    def resume(self) -> None:
        """Resume every task (PUT /connectors/{name}/resume)."""
        self.user_paused = False
        for task in self.tasks:
            task.resume()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the tasks: each writes and commits what it holds, then closes."""
        for task in self.tasks:
            task.stop()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def state(self) -> State:
        states = [State(t.status.snapshot()["state"]) for t in self.tasks]
        return connector_state(states, self.user_paused, self.trace is not None)

    def info(self) -> dict[str, Any]:
        """``GET /connectors/{name}``: name, config, tasks, type."""
        config = self.config.model_dump(mode="json")
        config["group.id"] = group_id(self.name)
        config["subscription"] = self.subscription
        config["errors.deadletterqueue.topic.name"] = self.dlq_topic
        return {"name": self.name, "config": config, "type": "sink",
                "tasks": [{"connector": self.name, "task": i} for i in range(self.config.tasks)]}

    def status(self) -> dict[str, Any]:
        """``GET /connectors/{name}/status``, Kafka Connect's shape (plus lag and metrics)."""
        connector: dict[str, Any] = {"state": self.state.value, "worker_id": self.worker_id}
        if self.trace is not None:
            connector["trace"] = self.trace
        return {"name": self.name, "connector": connector, "type": "sink",
                "tasks": [t.status.snapshot() for t in self.tasks]}
