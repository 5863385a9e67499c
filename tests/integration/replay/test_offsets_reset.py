"""Reset a sink's consumer group to a time: the sink lands the data again, without duplicates.
Apache Kafka's own ConsumerGroupCommand sees the same group and agrees with our plan."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, OffsetSpec

from robostream.config import ConnectorSettings, Settings
from robostream.replay import ReplayError, ResetSpec, Strategy, execute_reset, plan_reset, tool_command
from robostream.replay.offsets import committed_offsets, group_state
from robostream.replay.reader import list_offsets, partitions_of
from robostream.schemas import ConfluentSchemaResolver, DataType
from robostream.sinks import Worker, group_id
from robostream.topics import topic_for
from tests.integration.replay.helpers import cli, cli_env, produce, recorded_session
from tests.integration.sinks.helpers import stored_samples

RECORDS = 40  # per half


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def points(db: Any, session: str) -> tuple[int, int]:
    """(points landed, distinct records) of a session's telemetry in MongoDB."""
    samples = stored_samples(db, session)
    return len(samples), len({seq for seq, _ in samples})


@pytest.fixture(scope="module")
def sink_settings(rp_settings: Settings, mongo: Any, tag: str) -> Iterator[Settings]:
    """A Mongo sink connector on time_series; its database is dropped after the module."""
    connector = ConnectorSettings(name=f"mongo-{tag}", kind="mongo", topics=["time_series"],
                                  flush_interval_ms=200, errors_tolerance="all")
    yield rp_settings.model_copy(update={"connectors": [connector]})
    mongo.drop_database(rp_settings.mongo.database)


@pytest.fixture(scope="module")
def group(sink_settings: Settings, tag: str) -> Iterator[str]:
    """The sink's consumer group; deleted after the module."""
    name = group_id(f"mongo-{tag}")
    yield name
    admin = AdminClient({"bootstrap.servers": sink_settings.kafka.bootstrap})
    for future in admin.delete_consumer_groups([name], request_timeout=30).values():
        future.result()


@pytest.fixture(scope="module")
def landed(sink_settings: Settings, resolver: ConfluentSchemaResolver, mongo: Any, tag: str,
           group: str) -> datetime:
    """Two halves of a session produced a few seconds apart and landed by the Mongo sink, which
    is then stopped (its group inactive). Returns a time between the two halves."""
    session = f"s-{tag}"
    envelopes = recorded_session(session, time.time() - 60, telemetry=2 * RECORDS, logs=0, images=0)
    produce(sink_settings, resolver, envelopes[:RECORDS])
    time.sleep(1.5)
    between = datetime.now(UTC)
    time.sleep(1.5)
    produce(sink_settings, resolver, envelopes[RECORDS:])
    run_sink_until(sink_settings, mongo, session, 2 * RECORDS, group)
    return between


def committed(admin: AdminClient, group: str, partitions: list[Any]) -> dict[tuple[str, int], int]:
    """The group's committed offsets, 0 where it has none (an empty partition)."""
    return {tp: offset or 0 for tp, offset in committed_offsets(admin, group, partitions).items()}


def run_sink_until(settings: Settings, mongo: Any, session: str, records: int, group: str) -> None:
    """Run the sink worker until ``records`` time_series records of ``session`` are in MongoDB
    and its group has committed everything, then stop it."""
    db = mongo[settings.mongo.database]
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    partitions = partitions_of(admin, [topic_for(DataType.TIME_SERIES, settings)], settings.kafka.bootstrap)
    ends = list_offsets(admin, partitions, OffsetSpec.latest())
    worker = Worker(settings, rest=False)
    worker.start()
    try:
        wait_until(lambda: points(db, session) == (records * 10, records), 60, f"{records} records landed")
        wait_until(lambda: committed(admin, group, partitions) == ends, 30, "offsets committed")
    finally:
        worker.stop()
    wait_until(lambda: group_state(admin, group)[0].name == "EMPTY", 30, f"{group} to be empty")


def test_resetting_a_sink_group_to_a_time_relands_the_data_without_duplicates(
    sink_settings: Settings, mongo: Any, landed: datetime, tag: str, group: str,
) -> None:
    session = f"s-{tag}"
    db = mongo[sink_settings.mongo.database]
    db.telemetry.delete_many({"session_id": session})  # the store lost it

    plan = plan_reset(sink_settings, group, ResetSpec(Strategy.TO_DATETIME, time=landed))
    assert plan.state == "EMPTY" and plan.rereads == RECORDS
    assert {c.topic for c in plan.changes} == {topic_for(DataType.TIME_SERIES, sink_settings)}
    execute_reset(sink_settings, plan)
    run_sink_until(sink_settings, mongo, session, RECORDS, group)
    # only the second half was read again: the first half stays lost, nothing landed twice
    assert points(db, session) == (RECORDS * 10, RECORDS)
    assert sorted({seq for seq, _ in stored_samples(db, session)}) == list(range(RECORDS, 2 * RECORDS))

    execute_reset(sink_settings, plan_reset(sink_settings, group, ResetSpec(Strategy.TO_EARLIEST)))
    run_sink_until(sink_settings, mongo, session, 2 * RECORDS, group)  # everything, each once
    assert points(db, session) == (2 * RECORDS * 10, 2 * RECORDS)


def test_a_reset_needs_the_group_inactive(
    sink_settings: Settings, mongo: Any, landed: datetime, group: str,
) -> None:
    worker = Worker(sink_settings, rest=False)
    worker.start()
    admin = AdminClient({"bootstrap.servers": sink_settings.kafka.bootstrap})
    try:
        wait_until(lambda: group_state(admin, group)[0].name == "STABLE", 30, f"{group} to be stable")
        plan = plan_reset(sink_settings, group, ResetSpec(Strategy.TO_EARLIEST))
        assert not plan.inactive
        with pytest.raises(ReplayError, match=f"while group {group} is inactive, but its state is STABLE"):
            execute_reset(sink_settings, plan)
    finally:
        worker.stop()


def kafka_tool(settings: Settings, *args: str) -> str:
    result = subprocess.run(tool_command(settings, "consumer-groups", args), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_kafkas_consumer_group_command_shows_our_groups_and_resets_one(
    sink_settings: Settings, landed: datetime, group: str,
) -> None:
    listed = subprocess.run(cli("kafka_cmd", "consumer-groups", "--list"), env=cli_env(sink_settings),
                            capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert group in listed.stdout.split()

    # Kafka's --to-datetime lands on the offsets our plan gives, and commits them
    topic = topic_for(DataType.TIME_SERIES, sink_settings)
    ours = plan_reset(sink_settings, group, ResetSpec(Strategy.TO_DATETIME, time=landed), [topic])
    at = landed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{landed.microsecond // 1000:03d}Z"
    result = subprocess.run(
        tool_command(sink_settings, "consumer-groups", ["--reset-offsets", "--group", group, "--topic",
                                                        topic, "--to-datetime", at, "--execute"]),
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = re.findall(rf"{group}\s+{re.escape(topic)}\s+(\d+)\s+(\d+)", result.stdout)
    expected = {(c.topic, c.partition): c.new for c in ours.changes}
    assert {(topic, int(p)): int(o) for p, o in printed} == expected, result.stdout
    admin = AdminClient({"bootstrap.servers": sink_settings.kafka.bootstrap})
    partitions = partitions_of(admin, [topic], sink_settings.kafka.bootstrap)
    assert committed(admin, group, partitions) == expected
