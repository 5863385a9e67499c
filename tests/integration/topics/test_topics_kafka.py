"""The topic catalogue applied to a real Apache Kafka broker, checked with the API, CLI and kcat."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    ResourceType,
)
from typer.testing import CliRunner

from robostream.cli.topics_cmd import app
from robostream.config import Settings
from robostream.schemas.datatypes import DataType
from robostream.topics import (
    CreateStatus,
    Drift,
    TopicState,
    catalogue,
    create_topics,
    describe,
    list_topics,
    topic_for,
)

KCAT = "/usr/bin/kcat"
T = TypeVar("T")


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], timeout: float = 15) -> T:
    """``probe()`` until ``accept`` says yes (metadata reaches the broker a moment later)."""
    deadline = time.monotonic() + timeout
    result = probe()
    while not accept(result) and time.monotonic() < deadline:
        time.sleep(0.3)
        result = probe()
    return result


def all_drift(states: list[TopicState]) -> list[Drift]:
    return [d for state in states for d in state.drift]


def grow_partitions(admin: AdminClient, topic: str, total: int) -> None:
    for future in admin.create_partitions([NewPartitions(topic, total)]).values():
        future.result(timeout=30)


def set_config(admin: AdminClient, topic: str, name: str, value: str) -> None:
    entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """Run ``robostream topics <args>`` against the test broker under the test's prefix."""
    env = {
        "ROBOSTREAM_TOPICS__PREFIX": settings.topics.prefix,
        "ROBOSTREAM_SCHEMA_REGISTRY__TOPIC": settings.schema_registry.topic,
        "COLUMNS": "250",
    }
    result = CliRunner().invoke(app, [*args, "--bootstrap", settings.kafka.bootstrap], env=env)
    return result.exit_code, result.output


def test_create_twice_creates_once_then_reports_everything_existing(
    topic_settings: Settings,
) -> None:
    first = create_topics(topic_settings)
    assert [r.error for r in first.results if r.error] == []
    assert {r.status for r in first.results} == {CreateStatus.CREATED}

    second = create_topics(topic_settings)
    assert {r.status for r in second.results} == {CreateStatus.EXISTS}
    assert [r.spec.name for r in second.results] == [s.name for s in catalogue(topic_settings)]

    listed = {t.name: t for t in list_topics(topic_settings)}
    for spec in catalogue(topic_settings):
        assert listed[spec.name].exists
        assert listed[spec.name].partitions == spec.partitions


def test_describe_finds_no_drift_until_someone_changes_a_topic(
    topic_settings: Settings, admin: AdminClient,
) -> None:
    create_topics(topic_settings)
    states = describe(topic_settings)
    assert all_drift(states) == []
    assert all(s.exists for s in states)
    images = topic_for(DataType.IMAGES, topic_settings)
    telemetry = topic_for(DataType.TIME_SERIES, topic_settings)
    one_day = str(topic_settings.topics.media_retention_hours * 3_600_000)
    assert {s.spec.name: s for s in states}[images].configs["retention.ms"] == one_day

    grow_partitions(admin, images, topic_settings.topics.partitions + 2)
    set_config(admin, telemetry, "retention.ms", "3600000")

    drift = all_drift(eventually(lambda: describe(topic_settings),
                                 lambda states: len(all_drift(states)) >= 2))
    week = str(topic_settings.topics.retention_hours * 3_600_000)
    assert sorted(drift, key=lambda d: d.topic) == sorted([
        Drift(images, "partitions", str(topic_settings.topics.partitions),
              str(topic_settings.topics.partitions + 2)),
        Drift(telemetry, "retention.ms", week, "3600000"),
    ], key=lambda d: d.topic)


def test_cli_creates_lists_and_exits_1_on_drift(
    topic_settings: Settings, admin: AdminClient,
) -> None:
    total = len(catalogue(topic_settings))
    dlq = f"{topic_settings.topics.prefix}.dlq"

    code, out = cli(topic_settings, "describe")
    assert code == 1
    assert f"{total} topic(s) drifted" in out and "missing" in out

    code, out = cli(topic_settings, "create")
    assert code == 0, out
    assert f"{total} created, 0 already existed, 0 failed" in out

    code, out = cli(topic_settings, "create")
    assert code == 0, out
    assert f"0 created, {total} already existed, 0 failed" in out

    code, out = cli(topic_settings, "list")
    assert code == 0, out
    assert dlq in out and "dead letters" in out and "missing" not in out

    code, out = cli(topic_settings, "describe")
    assert code == 0, out
    assert f"all {total} topics match the catalogue" in out

    set_config(admin, dlq, "cleanup.policy", "compact")
    code, out = eventually(lambda: cli(topic_settings, "describe"), lambda result: result[0] != 0)
    assert code == 1, out
    row = next(line for line in out.splitlines() if "cleanup.policy" in line)
    assert dlq in row and "delete" in row and "compact" in row
    assert "1 topic(s) drifted from the catalogue" in out


def test_creation_errors_name_the_topic_and_the_brokers_reason(
    topic_settings: Settings, admin: AdminClient,
) -> None:
    brokers = len(admin.list_topics(timeout=10).brokers)
    too_many = topic_settings.model_copy(update={
        "kafka": topic_settings.kafka.model_copy(update={"replication_factor": brokers + 1}),
    })
    report = create_topics(too_many)
    assert not report.ok
    assert {r.status for r in report.results} == {CreateStatus.FAILED}
    assert all("REPLICATION_FACTOR" in (r.error or "") for r in report.results)
    assert not any(t.exists for t in list_topics(topic_settings))


def test_kcat_lists_our_topics_and_reads_what_confluent_kafka_wrote(
    topic_settings: Settings,
) -> None:
    create_topics(topic_settings)
    bootstrap = topic_settings.kafka.bootstrap

    listing = subprocess.run([KCAT, "-b", bootstrap, "-L"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    partitions = dict(re.findall(r'topic "([^"]+)" with (\d+) partitions', listing))
    for spec in catalogue(topic_settings):
        assert partitions.get(spec.name) == str(spec.partitions), spec.name

    telemetry = topic_for(DataType.TIME_SERIES, topic_settings)
    images = topic_for(DataType.IMAGES, topic_settings)
    big_frame = bytes(range(256)) * (2 * 1024 * 1024 // 256)  # 2 MiB: over Kafka's 1 MiB default
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True,
                         "message.max.bytes": topic_settings.topics.max_message_bytes})
    producer.produce(telemetry, key=b"robot_001/session_42", value=b'{"x": 1.5}')
    producer.produce(images, key=b"robot_001/session_42", value=big_frame)
    assert producer.flush(30) == 0

    def kcat_read(topic: str) -> str:
        return subprocess.run(
            [KCAT, "-b", bootstrap, "-t", topic, "-C", "-e", "-o", "beginning", "-q",
             "-f", "%k|%S|%s\n"],
            capture_output=True, timeout=60, check=True,
        ).stdout.decode(errors="replace")

    assert kcat_read(telemetry) == 'robot_001/session_42|10|{"x": 1.5}\n'
    assert kcat_read(images).startswith(f"robot_001/session_42|{len(big_frame)}|")
