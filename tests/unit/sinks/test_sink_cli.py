"""`robostream sink` as a user meets it (the group is wired into `robostream` by the lead)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robostream.cli.sink_cmd import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("command", [[], ["run"], ["status"], ["pause"], ["resume"]])
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_unknown_connector_is_named_with_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_CONFIG", str(ROOT / "config.yaml"))
    result = runner.invoke(app, ["run", "--connector", "elastic"])
    assert result.exit_code == 2
    assert "unknown connector(s) elastic" in result.output and "mongo, s3, redis" in result.output


def test_status_without_a_worker_says_so() -> None:
    result = runner.invoke(app, ["status", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "no sink worker answers" in result.output


def test_connectors_from_the_environment_reach_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_CONFIG", str(ROOT / "config.yaml"))
    monkeypatch.setenv("ROBOSTREAM_CONNECTORS", json.dumps([{"name": "only", "kind": "redis",
                                                             "topics": ["time_series"]}]))
    result = runner.invoke(app, ["run", "--connector", "mongo"])
    assert result.exit_code == 2 and "declares only" in result.output
