"""Drift: how a topic on the broker differs from its catalogue entry (pure, no broker calls)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from robostream.topics.catalog import TopicSpec

#: Configs whose value is a comma-separated set (order does not matter).
_LIST_CONFIGS = frozenset({"cleanup.policy"})


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference (``setting``: topic, partitions, replication.factor or a config name)."""

    topic: str
    setting: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} expected {self.expected}, found {self.actual}"


@dataclass(frozen=True, slots=True)
class TopicState:
    """A catalogued topic as the broker has it (``partitions`` is ``None`` when it is missing)."""

    spec: TopicSpec
    partitions: int | None
    replication_factor: int | None
    configs: Mapping[str, str] = field(default_factory=dict)
    drift: list[Drift] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.partitions is not None


def normalise(name: str, value: str | None) -> str:
    """A config value in comparable form (``None`` becomes ``(unset)``)."""
    if value is None:
        return "(unset)"
    if name in _LIST_CONFIGS:
        return ",".join(sorted(part.strip() for part in value.split(",") if part.strip()))
    return value.strip()


def config_drift(spec: TopicSpec, actual: Mapping[str, str]) -> list[Drift]:
    """Every catalogue config whose broker value differs."""
    drift = []
    for name, expected in spec.configs.items():
        want, got = normalise(name, expected), normalise(name, actual.get(name))
        if want != got:
            drift.append(Drift(spec.name, name, want, got))
    return drift


def compute_drift(
    spec: TopicSpec,
    partitions: int | None,
    replication_factor: int | None,
    configs: Mapping[str, str],
) -> list[Drift]:
    """All differences between ``spec`` and what the broker reports for that topic."""
    if partitions is None:
        return [Drift(spec.name, "topic", "exists", "missing")]
    drift = []
    if partitions != spec.partitions:
        drift.append(Drift(spec.name, "partitions", str(spec.partitions), str(partitions)))
    if replication_factor is not None and replication_factor != spec.replication_factor:
        drift.append(Drift(spec.name, "replication.factor",
                           str(spec.replication_factor), str(replication_factor)))
    return drift + config_drift(spec, configs)
