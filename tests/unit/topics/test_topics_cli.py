"""``robostream topics`` without a broker: help texts, formatting, an unreachable Kafka."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from robostream.cli.topics_cmd import app, duration, readable, size
from robostream.config import ConfigError

runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["create", "list", "describe"])
def test_every_command_explains_itself(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "--bootstrap" in result.output
    assert "Kafka" in result.output


def test_group_help_names_the_topics() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for word in ("create", "list", "describe", "dead letter queue", "robot.time_series"):
        assert word in result.output


def test_unreachable_kafka_exits_2_with_a_hint() -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    result = runner.invoke(app, ["describe", "--bootstrap", bootstrap, "--timeout", "1"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert f"cannot reach Kafka at {bootstrap}" in result.output
    assert "stack up" in result.output


def test_bad_bootstrap_is_a_clean_configuration_error() -> None:
    """Like a bad config.yaml: exit 2, the key, the value and the expected form; no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "robostream", "topics", "list", "--bootstrap", "no-port"],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "300"},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: invalid configuration (1 problem(s)):")
    assert "kafka.bootstrap = 'no-port'" in result.stderr
    assert "expected host:port" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["create", "describe"])
def test_every_command_reports_a_bad_bootstrap_as_configuration(command: str) -> None:
    """The error the entry point prints (above) is what every topics command raises."""
    result = runner.invoke(app, [command, "--bootstrap", "no-port"])
    assert isinstance(result.exception, ConfigError)
    assert "kafka.bootstrap = 'no-port'" in str(result.exception)


def test_values_read_like_a_human_would_write_them() -> None:
    assert duration(7 * 24 * 3_600_000) == "7d"
    assert duration(6 * 3_600_000) == "6h"
    assert duration(1500) == "1.5s"
    assert duration(None) == duration(-1) == "forever"
    assert size("8388608") == "8 MiB"
    assert size("1000") == "1000 B"
    assert size("65536") == "64 KiB"
    assert readable("retention.ms", "3600000") == "3600000 (1h)"
    assert readable("cleanup.policy", "delete") == "delete"
