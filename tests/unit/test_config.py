"""config.yaml + environment → typed settings, and the errors a user sees when it is wrong."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from robostream.config import ConfigError, RateSettings, Settings, load_settings, validate_id

ROOT = Path(__file__).resolve().parents[2]


def test_repo_config_yaml_loads_with_its_documented_endpoints() -> None:
    s = load_settings(ROOT / "config.yaml")
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.mongo.port == 27017 and s.s3.port == 8333 and s.redis.port == 6379
    assert [r.id for r in s.robots] == ["robot_001", "robot_002", "robot_003"]
    assert s.gateway.max_inline_bytes == 512 * 1024
    assert s.batching.max_messages == 100


def test_environment_overrides_any_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_KAFKA__BOOTSTRAP", "10.1.2.3:19092")
    monkeypatch.setenv("ROBOSTREAM_RATES__POSE_HZ", "250")
    s = load_settings(ROOT / "config.yaml")
    assert s.kafka.bootstrap == "10.1.2.3:19092" and s.kafka.port == 19092
    assert s.rates.pose_hz == 250.0


def test_invalid_value_names_key_value_and_expected_form(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("kafka:\n  bootstrap: localhost\nrates:\n  pose_hz: -3\n")
    with pytest.raises(ConfigError) as err:
        load_settings(bad)
    text = str(err.value)
    assert "kafka.bootstrap = 'localhost'" in text and "host:port" in text
    assert "rates.pose_hz = -3" in text and "greater than 0" in text
    assert "ROBOSTREAM_RATES__POSE_HZ" in text


def test_unknown_key_is_an_error_not_silently_ignored(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("kafka:\n  bootstrp: 127.0.0.1:9092\n")
    with pytest.raises(ConfigError, match=r"kafka.bootstrp"):
        load_settings(bad)


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_robostream_config_names_the_file_when_none_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("kafka:\n  bootstrap: 10.9.9.9:9092\n")
    monkeypatch.setenv("ROBOSTREAM_CONFIG", str(mine))
    assert load_settings().kafka.bootstrap == "10.9.9.9:9092"
    assert Settings().kafka.bootstrap == "10.9.9.9:9092"
    assert load_settings(ROOT / "config.yaml").kafka.bootstrap == "127.0.0.1:9092"  # the argument wins


def test_two_config_files_load_concurrently_from_threads_each_with_its_own_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = []
    for index in (1, 2):
        path = tmp_path / f"config-{index}.yaml"
        path.write_text(f"kafka:\n  bootstrap: 10.0.0.{index}:9092\n")
        files.append(path)
    # Both loads choose their YAML source together (both started, neither finished): a path passed
    # through the process environment would then be the same (the last one set) for both.
    barrier = threading.Barrier(2, timeout=10)
    original = Settings.settings_customise_sources.__func__  # type: ignore[attr-defined]

    def held(cls: type[Settings], *args: Any, **kwargs: Any) -> Any:
        barrier.wait()
        sources = original(cls, *args, **kwargs)
        barrier.wait()
        return sources

    monkeypatch.setattr(Settings, "settings_customise_sources", classmethod(held))
    with ThreadPoolExecutor(2) as pool:
        loaded = list(pool.map(lambda path: load_settings(path).kafka.bootstrap, files))
    assert loaded == ["10.0.0.1:9092", "10.0.0.2:9092"]


@pytest.mark.parametrize("good", ["robot_001", "session-2026-11-25T10.00", "A", "cam.front"])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "a..b", ".hidden", "x" * 65, "tab\there",
                                 "nul\x00", "ümlaut", "space here"])
def test_ids_that_could_escape_a_key_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid robot_id"):
        validate_id(bad, "robot_id")


def test_repo_config_yaml_has_the_rate_limit_and_api_tls_keys_off() -> None:
    s = load_settings(ROOT / "config.yaml")
    assert s.gateway.max_messages_per_s_per_robot is None and s.gateway.rate_burst_messages == 10_000
    assert s.api.tls_cert is None and s.api.tls_key is None


@pytest.mark.parametrize("section", ["gateway", "api"])
def test_tls_certificate_and_key_go_together_and_must_exist(tmp_path: Path, section: str) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    config = tmp_path / "config.yaml"
    config.write_text(f"{section}:\n  tls_cert: {cert}\n")
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_settings(config)
    config.write_text(f"{section}:\n  tls_cert: {cert}\n  tls_key: {key}\n")
    with pytest.raises(ConfigError, match=rf"tls_cert {cert} is not a file"):
        load_settings(config)
    cert.write_text("PEM")
    with pytest.raises(ConfigError, match=rf"tls_key {key} is not a file"):
        load_settings(config)
    key.write_text("PEM")
    s = load_settings(config)
    assert getattr(s, section).tls_cert == cert and getattr(s, section).tls_key == key


def test_the_local_mongodb_runs_without_retryable_writes_and_production_keeps_them() -> None:
    """SecantusDB spends ~15 ms per retryable write once its registry is full (the 10-robot media
    run's "frozen" drains); the local stack turns them off, docker-compose's real MongoDB does not."""
    from pymongo.uri_parser import parse_uri

    for uri in (load_settings(ROOT / "config.yaml").mongo.uri, Settings().mongo.uri):
        assert parse_uri(uri)["options"]["retryWrites"] is False, uri
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    production = [s["environment"]["ROBOSTREAM_MONGO__URI"] for s in compose["services"].values()
                  if "ROBOSTREAM_MONGO__URI" in (s.get("environment") or {})]
    assert production and all(parse_uri(u)["options"].get("retryWrites", True) for u in production)


def test_a_three_broker_local_stack_lists_every_node_and_replicates_three_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from robostream.topics import catalogue

    monkeypatch.setenv("ROBOSTREAM_STACK__KAFKA_BROKERS", "3")
    settings = load_settings(ROOT / "config.yaml")
    assert settings.kafka.bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert settings.kafka.replication_factor == 3
    specs = catalogue(settings)
    assert {s.replication_factor for s in specs} == {3}
    isr = {s.name: s.configs.get("min.insync.replicas") for s in specs}
    assert isr["robot.time_series"] == "2" and set(isr.values()) <= {"2", None}


def test_one_broker_stays_the_default_and_an_explicit_replication_factor_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = load_settings(ROOT / "config.yaml")
    assert (one.stack.kafka_brokers, one.kafka.bootstrap, one.kafka.replication_factor) == (
        1, "127.0.0.1:9092", 1)
    monkeypatch.setenv("ROBOSTREAM_STACK__KAFKA_BROKERS", "3")
    monkeypatch.setenv("ROBOSTREAM_KAFKA__REPLICATION_FACTOR", "2")
    monkeypatch.setenv("ROBOSTREAM_KAFKA__BOOTSTRAP", "10.0.0.5:9092,10.0.0.6:9092")
    listed = load_settings(ROOT / "config.yaml")
    assert listed.kafka.replication_factor == 2
    assert listed.kafka.bootstrap == "10.0.0.5:9092,10.0.0.6:9092"  # a list given is used as given


def test_cluster_ports_that_collide_are_refused_naming_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_STACK__KAFKA_BROKERS", "3")
    monkeypatch.setenv("ROBOSTREAM_STACK__KAFKA_CONTROLLER_PORT", "9094")
    with pytest.raises(ConfigError, match=r"stack\.kafka_controller_port"):
        load_settings(ROOT / "config.yaml")


@pytest.mark.parametrize(("given", "resolution"), [("1080p", "1920x1080"), ("720P", "1280x720"),
                                                   ("360p", "640x360"), ("320x180", "320x180")])
def test_a_camera_resolution_may_be_named(given: str, resolution: str) -> None:
    assert RateSettings(resolution=given).resolution == resolution


def test_an_unknown_resolution_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="resolution"):
        RateSettings(resolution="4k")
