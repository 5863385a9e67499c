"""``robostream kafka <tool>``: main classes, the injected bootstrap, pass-through arguments."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from robostream.cli import kafka_cmd
from robostream.config import KafkaSettings, Settings
from robostream.replay import TOOLS, ReplayError, tool_command
from robostream.replay.kafka_tools import with_bootstrap
from robostream.stack.servers import KafkaServer

SETTINGS = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:19092"))


def test_the_bootstrap_server_comes_from_the_settings_unless_given() -> None:
    assert with_bootstrap(SETTINGS, ["--list"]) == ["--bootstrap-server", "127.0.0.1:19092", "--list"]
    given = ["--bootstrap-server", "10.0.0.5:9092", "--list"]
    assert with_bootstrap(SETTINGS, given) == given
    inline = ["--bootstrap-server=10.0.0.5:9092"]
    assert with_bootstrap(SETTINGS, inline) == inline
    assert with_bootstrap(SETTINGS, ["--help"]) == ["--help"]


def test_a_tool_runs_its_main_class_from_the_stack_jars() -> None:
    command = tool_command(SETTINGS, "consumer-groups", ["--describe", "--group", "connect-mongo"],
                           install=False)
    libs = KafkaServer(SETTINGS).libs
    assert command[0] == "java" and command[command.index("-cp") + 1] == f"{libs}/*"
    main = command.index("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")
    assert command[main + 1:] == ["--bootstrap-server", "127.0.0.1:19092", "--describe", "--group",
                                  "connect-mongo"]
    # the tools' quiet logging (warnings to stderr) wins over the broker's, given before it
    log_flags = [a for a in command[:main] if a.startswith("-Dlog4j2.configurationFile=")]
    tools_config = Path(log_flags[-1].split("=", 1)[1])
    assert tools_config.name == "kafka-tools-log4j2.properties" and tools_config.is_file()


def test_an_unknown_tool_names_the_known_ones() -> None:
    with pytest.raises(ReplayError, match="unknown Kafka tool 'acls'; known: consumer-groups"):
        tool_command(SETTINGS, "acls", [], install=False)


def test_the_main_classes_are_in_the_cached_kafka_jars() -> None:
    libs = KafkaServer(SETTINGS).libs
    jars = sorted(Path(libs).glob("kafka-tools-*.jar")) if Path(libs).is_dir() else []
    if not jars:
        pytest.skip(f"Kafka's jars are not cached in {libs} (robostream stack install)")
    names = set(zipfile.ZipFile(jars[0]).namelist())
    for tool in TOOLS.values():
        assert tool.main_class.replace(".", "/") + ".class" in names, tool.main_class


def _root() -> typer.Typer:
    """The wiring cli/main.py does: ``app.add_typer(kafka_cmd.app, name="kafka")``."""
    root = typer.Typer()

    @root.callback()
    def _main() -> None:
        pass

    root.add_typer(kafka_cmd.app, name="kafka")
    return root


def test_arguments_after_the_tool_pass_through_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []

    def fake_run(settings: Settings, tool: str, args: list[str]) -> int:
        calls.append((tool, args))
        return 3

    monkeypatch.setattr("robostream.replay.run_tool", fake_run)
    argv = ["kafka", "consumer-groups", "--reset-offsets", "--group", "g", "--topic", "robot.log",
            "--shift-by", "-5", "--help"]
    result = CliRunner().invoke(_root(), argv)
    assert result.exit_code == 3, result.output
    assert calls == [("consumer-groups", argv[2:])]


def test_kafka_help_is_ours_and_lists_the_tools() -> None:
    result = CliRunner().invoke(_root(), ["kafka", "--help"])
    assert result.exit_code == 0
    assert "consumer-groups" in result.output and "get-offsets" in result.output
