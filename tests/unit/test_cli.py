"""The `robostream` command as a user meets it: help everywhere, clear config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robostream.cli.main import app

runner = CliRunner()


def _commands(typer_app: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    group = typer.main.get_command(typer_app)  # type: ignore[arg-type]
    found = [prefix]
    for name, cmd in getattr(group, "commands", {}).items():
        found.append((*prefix, name))
        found += [(*prefix, name, sub) for sub in getattr(cmd, "commands", {})]
    return found


@pytest.mark.parametrize("path", _commands(app))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("redis:\n  url: http://nope\n")
    result = subprocess.run([sys.executable, "-m", "robostream", "--config", str(bad), "config",
                             "check"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "redis.url" in result.stderr and "http://nope" in result.stderr
