"""Reset a consumer group's committed offsets, as ``kafka-consumer-groups --reset-offsets``.

Plan first (:func:`plan_reset`: current and new offset per partition), then apply
(:func:`execute_reset`). Like Kafka's tool, a reset needs the group to be **inactive** (state
``Empty``, or ``Dead`` for a group that does not exist yet): stop the sink worker or processors
that use it first. Strategies and their Kafka flags:

===================  =============================  =========================================
strategy             Kafka flag                     new offset
===================  =============================  =========================================
``to-datetime T``    ``--to-datetime``              first record with a Kafka timestamp >= T
                                                    (the log end when there is none)
``by-duration D``    ``--by-duration``              as ``to-datetime`` at now - D
``shift-by N``       ``--shift-by``                 committed + N (needs a committed offset)
``to-earliest``      ``--to-earliest``              the log start
``to-latest``        ``--to-latest``                the log end
``to-offset N``      ``--to-offset``                N
===================  =============================  =========================================

Every new offset is clamped to ``[log start, log end]``. Kafka timestamps of robot records are
their ingest time (see :mod:`robostream.replay.reader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from robostream.config import Settings
from robostream.replay.reader import (
    KAFKA_TIMEOUT_S,
    ReplayError,
    describe_kafka_error,
    list_offsets,
    partitions_of,
    reader_admin,
)

INACTIVE_STATES = frozenset({ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD})


class Strategy(StrEnum):
    TO_DATETIME = "to-datetime"
    BY_DURATION = "by-duration"
    SHIFT_BY = "shift-by"
    TO_EARLIEST = "to-earliest"
    TO_LATEST = "to-latest"
    TO_OFFSET = "to-offset"


@dataclass(frozen=True, slots=True)
class ResetSpec:
    """Where to move the group: a strategy and its argument."""

    strategy: Strategy
    time: datetime | None = None
    duration: timedelta | None = None
    amount: int | None = None  # shift-by N, to-offset N

    def __post_init__(self) -> None:
        needs = {Strategy.TO_DATETIME: self.time, Strategy.BY_DURATION: self.duration,
                 Strategy.SHIFT_BY: self.amount, Strategy.TO_OFFSET: self.amount}
        if self.strategy in needs and needs[self.strategy] is None:
            raise ValueError(f"--{self.strategy} needs a value")
        if self.time is not None and self.time.tzinfo is None:
            raise ValueError("the time of a reset must be timezone-aware")

    def __str__(self) -> str:
        value = {Strategy.TO_DATETIME: self.time.isoformat() if self.time else None,
                 Strategy.BY_DURATION: str(self.duration), Strategy.SHIFT_BY: self.amount,
                 Strategy.TO_OFFSET: self.amount}.get(self.strategy)
        return f"--{self.strategy}" + (f" {value}" if value is not None else "")

    def target_time(self, now: datetime) -> datetime | None:
        """The time the offsets are looked up at (``to-datetime`` and ``by-duration``)."""
        if self.strategy is Strategy.TO_DATETIME:
            return self.time
        if self.strategy is Strategy.BY_DURATION and self.duration is not None:
            return now - self.duration
        return None


@dataclass(frozen=True, slots=True)
class OffsetChange:
    """One partition of the plan."""

    topic: str
    partition: int
    current: int | None  # the committed offset, None when the group has none
    new: int

    @property
    def delta(self) -> int | None:
        """``new - current``: negative means records are read again."""
        return None if self.current is None else self.new - self.current


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """What :func:`execute_reset` would do, and the group's state when planned."""

    group: str
    state: str
    members: int
    spec: ResetSpec
    changes: tuple[OffsetChange, ...]

    @property
    def inactive(self) -> bool:
        return self.state in {s.name for s in INACTIVE_STATES}

    @property
    def rereads(self) -> int:
        """Records the group will read again (sum of the negative deltas)."""
        return sum(-(c.delta or 0) for c in self.changes if (c.delta or 0) < 0)


def parse_topic(text: str) -> tuple[str, list[int] | None]:
    """``topic`` or ``topic:0,2`` (Kafka's ``--topic`` syntax) -> (topic, partitions or None)."""
    name, _, parts = text.partition(":")
    if not name:
        raise ValueError(f"not a topic: {text!r}")
    if not parts:
        return name, None
    try:
        return name, sorted({int(p) for p in parts.split(",")})
    except ValueError:
        raise ValueError(f"not a topic with partitions: {text!r}; expected e.g. robot.log:0,1") from None


# --- group --------------------------------------------------------------------------------------


def group_state(admin: AdminClient, group: str) -> tuple[ConsumerGroupState, int]:
    """The group's state and number of members (``DEAD``, 0 for a group that does not exist)."""
    future = admin.describe_consumer_groups([group], request_timeout=KAFKA_TIMEOUT_S)[group]
    try:
        description = future.result()
    except KafkaException as exc:
        if "GROUP_ID_NOT_FOUND" in describe_kafka_error(exc):
            return ConsumerGroupState.DEAD, 0
        raise ReplayError(f"cannot describe group {group}: {describe_kafka_error(exc)}") from None
    return description.state, len(description.members)


def committed_offsets(
    admin: AdminClient, group: str, partitions: Sequence[TopicPartition] | None = None,
) -> dict[tuple[str, int], int | None]:
    """The group's committed offsets (all of them, or those of ``partitions``)."""
    request = ConsumerGroupTopicPartitions(group, list(partitions) if partitions is not None else None)
    future = admin.list_consumer_group_offsets([request], request_timeout=KAFKA_TIMEOUT_S)[group]
    try:
        result = future.result()
    except KafkaException as exc:
        raise ReplayError(f"cannot read the offsets of group {group}: {describe_kafka_error(exc)}") from None
    return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
            for tp in result.topic_partitions or ()}


def _partitions(admin: AdminClient, settings: Settings, group: str,
                topics: Sequence[str] | None) -> list[TopicPartition]:
    if not topics:
        known = committed_offsets(admin, group)
        if not known:
            raise ReplayError(f"group {group} has no committed offsets; name the topics with --topics")
        return [TopicPartition(t, p) for t, p in sorted(known)]
    chosen = []
    for text in topics:
        name, wanted = parse_topic(text)
        present = partitions_of(admin, [name], settings.kafka.bootstrap)
        if wanted is not None:
            numbers = {tp.partition for tp in present}
            unknown = [p for p in wanted if p not in numbers]
            if unknown:
                raise ReplayError(f"{name} has no partition(s) {unknown}; it has {sorted(numbers)}")
            present = [tp for tp in present if tp.partition in wanted]
        chosen.extend(present)
    return chosen


# --- plan and execute ---------------------------------------------------------------------------


def _new_offsets(admin: AdminClient, spec: ResetSpec, partitions: list[TopicPartition],
                 current: dict[tuple[str, int], int | None], now: datetime) -> dict[tuple[str, int], int]:
    low = list_offsets(admin, partitions, OffsetSpec.earliest())
    high = list_offsets(admin, partitions, OffsetSpec.latest())
    moment = spec.target_time(now)
    if moment is not None:
        found = list_offsets(admin, partitions, OffsetSpec.for_timestamp(int(moment.timestamp() * 1000)))
        wanted = {tp: (off if off >= 0 else high[tp]) for tp, off in found.items()}
    elif spec.strategy is Strategy.TO_EARLIEST:
        wanted = dict(low)
    elif spec.strategy is Strategy.TO_LATEST:
        wanted = dict(high)
    elif spec.strategy is Strategy.TO_OFFSET:
        wanted = dict.fromkeys(low, int(spec.amount or 0))
    else:  # shift-by
        missing = [f"{t}[{p}]" for (t, p), off in current.items() if off is None]
        if missing:
            raise ReplayError(f"cannot shift the offset of {', '.join(missing)}: the group has no "
                              "committed offset there (use --to-earliest or --to-datetime)")
        wanted = {tp: int(off or 0) + int(spec.amount or 0) for tp, off in current.items()}
    return {tp: min(max(off, low[tp]), high[tp]) for tp, off in wanted.items()}


def plan_reset(settings: Settings, group: str, spec: ResetSpec, topics: Sequence[str] | None = None,
               *, admin: AdminClient | None = None, now: datetime | None = None) -> ResetPlan:
    """The offsets ``spec`` gives every partition of ``topics`` (default: every partition the
    group has committed offsets for). Changes nothing."""
    admin = admin or reader_admin(settings)
    state, members = group_state(admin, group)
    partitions = _partitions(admin, settings, group, topics)
    committed = committed_offsets(admin, group, partitions)
    current = {(tp.topic, tp.partition): committed.get((tp.topic, tp.partition)) for tp in partitions}
    new = _new_offsets(admin, spec, partitions, current, now or datetime.now(UTC))
    changes = tuple(OffsetChange(t, p, current[(t, p)], new[(t, p)]) for t, p in sorted(current))
    return ResetPlan(group, state.name, members, spec, changes)


def require_inactive(admin: AdminClient, group: str) -> None:
    """Raise :class:`ReplayError` unless the group has no active member (Kafka's rule)."""
    state, members = group_state(admin, group)
    if state not in INACTIVE_STATES:
        raise ReplayError(
            f"offsets can only be reset while group {group} is inactive, but its state is "
            f"{state.name} with {members} member(s): stop the consumers first (e.g. the sink "
            "worker running this connector) and try again"
        )


def execute_reset(settings: Settings, plan: ResetPlan, *, admin: AdminClient | None = None) -> ResetPlan:
    """Commit the plan's new offsets for its group, after checking again that it is inactive."""
    admin = admin or reader_admin(settings)
    require_inactive(admin, plan.group)
    if not plan.changes:
        return plan
    request = ConsumerGroupTopicPartitions(
        plan.group, [TopicPartition(c.topic, c.partition, c.new) for c in plan.changes])
    future = admin.alter_consumer_group_offsets([request], request_timeout=KAFKA_TIMEOUT_S)[plan.group]
    try:
        result = future.result()
    except KafkaException as exc:
        raise ReplayError(f"Kafka refused the reset of group {plan.group}: "
                          f"{describe_kafka_error(exc)}") from None
    failed = [f"{tp.topic}[{tp.partition}]: {tp.error.str()}" for tp in result.topic_partitions or ()
              if tp.error is not None]
    if failed:
        raise ReplayError(f"the reset of group {plan.group} failed for {'; '.join(failed)}")
    return plan
