"""Two workers split the partitions; stopping one moves its partitions to the other."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka.admin import AdminClient

from robostream.config import Settings
from tests.integration.processors.harness import Worker, produce, telemetry


def _owned(status: dict[str, object]) -> set[str]:
    return {tp for tp in status.get("assigned", []) if ".time_series:" in tp}  # type: ignore[union-attr]


def _group_members(settings: Settings, expected: int, timeout: float = 20.0) -> int:
    """Members of the workers' consumer group, as ``kafka-consumer-groups --describe`` shows
    (polled until ``expected``: the group settles a moment after a rebalance)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        group = admin.describe_consumer_groups([settings.processors.app_id])[settings.processors.app_id]
        members = len(group.result(timeout=10).members)
        if members == expected or time.monotonic() > deadline:
            return members
        time.sleep(0.5)


def test_two_workers_split_the_partitions_and_take_over_on_stop(
    make_settings: Callable[..., Settings], workers: Callable[[Settings, str], Worker],
) -> None:
    settings = make_settings(partitions=4)
    all_partitions = {f"{settings.topics.prefix}.time_series:{p}" for p in range(4)}
    one = workers(settings, "w1")
    one.wait_for(lambda s: _owned(s) == all_partitions)
    two = workers(settings, "w2")
    two.wait_for(lambda s: len(_owned(s)) == 2, timeout=60)
    mine = one.wait_for(lambda s: len(_owned(s)) == 2)
    assert _owned(mine) | _owned(two.status()) == all_partitions
    assert not _owned(mine) & _owned(two.status())
    assert _group_members(settings, 2) == 2
    # both work: records of many sessions (spread over the partitions) are processed by both
    produce(settings, [e for s in range(32) for e in telemetry("robot_001", f"s{s}", 1.8e9, 5)])
    one.wait_for(lambda s: s["totals"].get("telemetry_records", 0) > 0)
    two.wait_for(lambda s: s["totals"].get("telemetry_records", 0) > 0)
    two.stop()  # SIGTERM: clean leave, its partitions move to w1
    before = one.wait_for(lambda s: _owned(s) == all_partitions, timeout=60)["totals"]["telemetry_records"]
    # w1 now handles the records of every partition, w2's former ones included
    produce(settings, [e for s in range(32) for e in telemetry("robot_002", f"s{s}", 1.8e9, 5)])
    one.wait_for(lambda s: s["totals"]["telemetry_records"] >= before + 160, timeout=60)
