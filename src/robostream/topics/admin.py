"""Create, list and describe the catalogued topics on a Kafka cluster.

These are blocking calls meant for the CLI and for start-up; from async code run them in an
executor (``loop.run_in_executor(None, create_topics, settings)``).
"""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from robostream.config import Settings
from robostream.errors import RobostreamError
from robostream.topics.catalog import TopicSpec, catalogue, is_ours
from robostream.topics.drift import TopicState, compute_drift

DEFAULT_TIMEOUT_S = 15.0

_librdkafka_log = logging.getLogger("robostream.topics.librdkafka")
_librdkafka_log.addHandler(logging.NullHandler())


class TopicAdminError(RobostreamError):
    """Kafka could not be reached or refused a request; the message says which and why."""


class CreateStatus(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CreateResult:
    """The outcome for one topic; ``error`` is the broker's reason when it failed."""

    spec: TopicSpec
    status: CreateStatus
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CreateReport:
    """The outcome of :func:`create_topics`, one result per catalogued topic."""

    results: list[CreateResult]

    def with_status(self, status: CreateStatus) -> list[CreateResult]:
        return [r for r in self.results if r.status is status]

    @property
    def ok(self) -> bool:
        return not self.with_status(CreateStatus.FAILED)


@dataclass(frozen=True, slots=True)
class ListedTopic:
    """A topic of ours: catalogued (``spec``) or not, present on the broker or not."""

    name: str
    spec: TopicSpec | None
    partitions: int | None
    replication_factor: int | None

    @property
    def exists(self) -> bool:
        return self.partitions is not None


# --- broker access ------------------------------------------------------------------------------


def admin_client(settings: Settings) -> AdminClient:
    """An AdminClient for ``settings.kafka.bootstrap``; librdkafka logs go to Python logging."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap,
        "client.id": f"{settings.kafka.client_id}-topics",
        "logger": _librdkafka_log,
    }
    return AdminClient(config)


def _describe_error(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"
    return str(exc) or type(exc).__name__


def _topic_layout(
    admin: AdminClient, settings: Settings, timeout: float
) -> dict[str, tuple[int, int]]:
    """``{topic: (partitions, replication factor)}`` for every topic on the cluster."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicAdminError(
            f"cannot reach Kafka at {settings.kafka.bootstrap} within {timeout:g}s "
            f"({_describe_error(exc)}); is the broker running? (`robostream stack up`, "
            "or set kafka.bootstrap / ROBOSTREAM_KAFKA__BOOTSTRAP)"
        ) from None
    layout = {}
    for name, topic in metadata.topics.items():
        replicas = max((len(p.replicas) for p in topic.partitions.values()), default=0)
        layout[name] = (len(topic.partitions), replicas)
    return layout


def _topic_configs(
    admin: AdminClient, names: list[str], timeout: float
) -> dict[str, dict[str, str]]:
    """``{topic: {config: value}}`` as the broker reports them (defaults included)."""
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=timeout)
    configs = {}
    for resource, future in futures.items():
        try:
            entries = future.result()
        except KafkaException as exc:
            raise TopicAdminError(
                f"cannot read the configs of topic {resource.name}: {_describe_error(exc)}"
            ) from None
        configs[resource.name] = {k: e.value for k, e in entries.items() if e.value is not None}
    return configs


# --- create -------------------------------------------------------------------------------------


def new_topic(spec: TopicSpec) -> NewTopic:
    """The AdminClient request that creates ``spec``."""
    return NewTopic(spec.name, num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor, config=dict(spec.configs))


def _outcome(spec: TopicSpec, future: Future[Any]) -> CreateResult:
    try:
        future.result()
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return CreateResult(spec, CreateStatus.EXISTS)
        return CreateResult(spec, CreateStatus.FAILED, _describe_error(exc))
    return CreateResult(spec, CreateStatus.CREATED)


def _await_visible(
    admin: AdminClient, settings: Settings, names: list[str], timeout: float
) -> None:
    """Wait until the broker's metadata shows ``names`` (creation is acknowledged by the
    controller before every broker has applied it)."""
    deadline = time.monotonic() + timeout
    while names and time.monotonic() < deadline:
        layout = _topic_layout(admin, settings, timeout)
        if all(name in layout for name in names):
            return
        time.sleep(0.2)


def create_topics(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S) -> CreateReport:
    """Create every catalogued topic that does not exist yet; existing ones are left untouched.

    Returns once the new topics show in the cluster metadata (or ``timeout`` passed).

    Raises :class:`TopicAdminError` when Kafka is unreachable; per-topic failures (e.g. a
    replication factor above the number of brokers) are in the report with the broker's reason.
    """
    admin = admin_client(settings)
    existing = _topic_layout(admin, settings, timeout)
    specs = catalogue(settings)
    results = {s.name: CreateResult(s, CreateStatus.EXISTS) for s in specs if s.name in existing}
    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = admin.create_topics([new_topic(s) for s in missing],
                                      operation_timeout=timeout, request_timeout=timeout)
        for spec in missing:
            results[spec.name] = _outcome(spec, futures[spec.name])
        created = [s.name for s in missing if results[s.name].status is CreateStatus.CREATED]
        _await_visible(admin, settings, created, timeout)
    return CreateReport([results[s.name] for s in specs])


def cluster_not_ready(settings: Settings, *, timeout: float = 5.0) -> str | None:
    """Why a Kafka client starting now would fail, in a sentence; ``None`` when it would not.

    Kafka must answer, and every partition (``__consumer_offsets`` too: the group coordinators
    live there) must have a leader that accepts connections. A broker killed a moment ago stays in
    the metadata, leading its partitions, until the controller fences it
    (``broker.session.timeout.ms``), so each listed broker's port is tried as well.
    """
    try:
        metadata = admin_client(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        return f"Kafka at {settings.kafka.bootstrap} does not answer ({_describe_error(exc)})"
    down = {b.id: f"{b.host}:{b.port}" for b in metadata.brokers.values()
            if not _accepts_connections(str(b.host), int(b.port), timeout)}
    leaderless = sorted(f"{t.topic}[{p.id}]" for t in metadata.topics.values()
                        for p in t.partitions.values() if p.leader == -1 or p.leader in down)
    if not down and not leaderless:
        return None
    parts = [f"broker(s) {', '.join(sorted(down.values()))} listed but not reachable"] if down else []
    if leaderless:
        more = f" and {len(leaderless) - 3} more" if len(leaderless) > 3 else ""
        shown = ", ".join(leaderless[:3]) + more
        parts.append(f"no reachable leader for {shown}")
    return "; ".join(parts)


def _accepts_connections(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 2.0)):
            return True
    except OSError:
        return False


# --- list and describe --------------------------------------------------------------------------


def list_topics(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[ListedTopic]:
    """Catalogued topics (present or missing), then uncatalogued topics under our prefix."""
    layout = _topic_layout(admin_client(settings), settings, timeout)
    specs = catalogue(settings)
    known = {s.name for s in specs}
    listed = [ListedTopic(s.name, s, *layout.get(s.name, (None, None))) for s in specs]
    extra = sorted(n for n in layout if n not in known and is_ours(n, settings))
    return listed + [ListedTopic(n, None, *layout[n]) for n in extra]


def describe(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[TopicState]:
    """Every catalogued topic with its actual partitions, configs and drift from the catalogue."""
    admin = admin_client(settings)
    layout = _topic_layout(admin, settings, timeout)
    specs = catalogue(settings)
    configs = _topic_configs(admin, [s.name for s in specs if s.name in layout], timeout)
    states = []
    for spec in specs:
        partitions, replicas = layout.get(spec.name, (None, None))
        actual = configs.get(spec.name, {})
        drift = compute_drift(spec, partitions, replicas, actual)
        states.append(TopicState(spec, partitions, replicas, actual, drift))
    return states
