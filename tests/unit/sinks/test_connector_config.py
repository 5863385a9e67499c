"""The `connectors` and `sinks` sections of config.yaml, and how connectors find their topics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robostream.config import ConfigError, ConnectorSettings, Settings, SinkRole, load_settings
from robostream.sinks import ConnectorConfigError, resolve_topic, select_connectors, subscription
from robostream.sinks.connector import dlq_topic_name

ROOT = Path(__file__).resolve().parents[3]


def test_repo_config_declares_the_default_connectors_over_catalogue_topics() -> None:
    settings = load_settings(ROOT / "config.yaml")
    kinds = {c.name: c.kind for c in settings.connectors}
    assert kinds == {"mongo": "mongo", "s3": "s3", "redis": "redis", "redis-frames": "redis"}
    assert [c.model_dump() for c in settings.connectors if c.kind == "redis"] == [
        c.model_dump() | {"flush_interval_ms": 0} for c in Settings().connectors if c.kind == "redis"]
    redis, frames = (set(c.topics) for c in settings.connectors if c.kind == "redis")
    assert {"time_series", "log"} <= redis and "images" in frames and not redis & frames  # logs live
    assert settings.sinks.port == 8083
    for connector in settings.connectors:
        topics = subscription(connector, settings)
        assert all(t.startswith("robot.") for t in topics)
        assert dlq_topic_name(connector, settings) == "robot.dlq"
        assert connector.errors_tolerance == "all"
    mongo = next(c for c in settings.connectors if c.kind == "mongo")
    assert "robot.time_series" in subscription(mongo, settings)  # raw telemetry until processors run
    assert "robot.sessions" in subscription(mongo, settings)


def test_defaults_without_a_connectors_section_are_the_same_four() -> None:
    assert [c.kind for c in Settings().connectors] == ["mongo", "s3", "redis", "redis"]


def test_a_connector_from_yaml_with_every_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "topics:\n  prefix: fleet\n"
        "connectors:\n"
        "  - name: stats-to-mongo\n    kind: mongo\n    topics_regex: '${prefix}\\.derived\\.stats_.*'\n"
        "    tasks: 3\n    batch_size: 1000\n    flush_interval_ms: 250\n"
        "    errors_tolerance: none\n    dlq_topic: null\n    errors_retry_timeout_ms: 60000\n"
        "sinks:\n  host: 0.0.0.0\n  port: 18083\n"
    )
    settings = load_settings(config)
    [connector] = settings.connectors
    assert (connector.tasks, connector.batch_size, connector.flush_interval_ms) == (3, 1000, 250)
    assert subscription(connector, settings) == ["^fleet\\.derived\\.stats_.*"]
    assert dlq_topic_name(connector, settings) is None
    assert settings.sinks.port == 18083


def test_connectors_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_CONNECTORS", json.dumps(
        [{"name": "m1", "kind": "mongo", "topics": ["time_series"]}]))
    settings = load_settings(ROOT / "config.yaml")
    assert [c.name for c in settings.connectors] == ["m1"]
    assert settings.connectors[0].errors_tolerance == "none"  # Kafka Connect's default


@pytest.mark.parametrize(("yaml", "complaint"), [
    ("  - {name: a, kind: mongo}\n", "exactly one of topics"),
    ("  - {name: a, kind: mongo, topics: [x], topics_regex: 'y'}\n", "exactly one of topics"),
    ("  - {name: a, kind: kafka, topics: [x]}\n", "connectors.0.kind"),
    ("  - {name: Bad Name, kind: mongo, topics: [x]}\n", "connectors.0.name"),
    ("  - {name: a, kind: mongo, topics: [x], tasks: 0}\n", "connectors.0.tasks"),
    ("  - {name: a, kind: mongo, topics: [x], errors_tolerance: some}\n", "errors_tolerance"),
    ("  - {name: a, kind: mongo, topics_regex: '(unclosed'}\n", "not a regular expression"),
    ("  - {name: a, kind: mongo, topics: [x]}\n  - {name: a, kind: s3, topics: [y]}\n",
     "repeated: a"),
    ("  - {name: a, kind: mongo, topics: [x], batchsize: 5}\n", "batchsize"),
])
def test_invalid_connectors_are_reported_with_the_key(tmp_path: Path, yaml: str, complaint: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("connectors:\n" + yaml)
    with pytest.raises(ConfigError, match="connectors") as err:
        load_settings(config)
    assert complaint in str(err.value)


def test_topic_names_resolve_through_the_catalogue() -> None:
    settings = Settings(topics={"prefix": "fleet"})
    assert resolve_topic("time_series", settings) == "fleet.time_series"
    assert resolve_topic("derived.stats_1m", settings) == "fleet.derived.stats_1m"
    assert resolve_topic("sessions", settings) == "fleet.sessions"
    assert resolve_topic("fleet.images", settings) == "fleet.images"
    with pytest.raises(ConnectorConfigError, match=r"unknown topic 'telemetry'.*time_series"):
        resolve_topic("telemetry", settings)


def test_select_connectors_by_name_or_all_enabled() -> None:
    settings = Settings(connectors=[
        ConnectorSettings(name="a", kind="mongo", topics=["time_series"]),
        ConnectorSettings(name="b", kind="s3", topics=["images"], enabled=False),
    ])
    assert [c.name for c in select_connectors(settings, None)] == ["a"]
    assert [c.name for c in select_connectors(settings, ["b"])] == ["b"]
    with pytest.raises(ConnectorConfigError, match=r"unknown connector.*zz.*declares a, b"):
        select_connectors(settings, ["zz"])


def test_the_live_and_the_store_worker_split_the_enabled_connectors_by_kind() -> None:
    settings = Settings(connectors=[
        ConnectorSettings(name="m", kind="mongo", topics=["time_series"]),
        ConnectorSettings(name="r", kind="redis", topics=["time_series"]),
        ConnectorSettings(name="r2", kind="redis", topics=["images"], enabled=False),
        ConnectorSettings(name="s", kind="s3", topics=["images"]),
    ])
    assert [c.name for c in select_connectors(settings, None, "live")] == ["r"]
    assert [c.name for c in select_connectors(settings, None, "store")] == ["m", "s"]
    assert [c.name for c in select_connectors(settings, None, "all")] == ["m", "r", "s"]
    live_s3 = settings.sinks.model_copy(update={"live_kinds": ["redis", "s3"]})
    moved = settings.model_copy(update={"sinks": live_s3})
    assert [c.name for c in select_connectors(moved, None, "live")] == ["r", "s"]


def test_a_worker_with_no_connector_of_its_role_refuses_to_start() -> None:
    from robostream.sinks import Worker

    settings = Settings(connectors=[ConnectorSettings(name="m", kind="mongo", topics=["time_series"])])
    with pytest.raises(ConnectorConfigError, match="no enabled connector for the live worker"):
        Worker(settings, None, role="live", rest=False)


@pytest.mark.parametrize(("role", "port", "listens_on"), [
    ("live", None, 8084), ("store", None, 8083), ("all", None, 8083), ("live", 18099, 18099),
    ("store", 18098, 18098),
])
def test_a_worker_names_itself_by_its_roles_rest_port_or_the_one_given(
        role: SinkRole, port: int | None, listens_on: int) -> None:
    from robostream.sinks import Worker

    settings = Settings(connectors=[
        ConnectorSettings(name="m", kind="mongo", topics=["time_series"]),
        ConnectorSettings(name="r", kind="redis", topics=["time_series"]),
    ])
    worker = Worker(settings, None, role=role, port=port, rest=False)
    assert worker.worker_id.endswith(f":{listens_on}")
    assert {c.worker_id for c in worker.connectors.values()} == {worker.worker_id}
