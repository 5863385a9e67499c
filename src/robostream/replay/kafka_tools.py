"""Apache Kafka's own command-line tools, run from the stack's jars against robostream's cluster.

``robostream kafka consumer-groups --list`` is ``kafka-consumer-groups.sh --bootstrap-server
<kafka.bootstrap> --list``: the friendly name picks the tool's main class (as Kafka's ``bin/``
scripts do) and ``--bootstrap-server`` comes from the settings unless given.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

from robostream.config import Settings
from robostream.replay.reader import ReplayError


@dataclass(frozen=True, slots=True)
class KafkaTool:
    """One of Kafka's tools: its main class and the ``bin/`` script it stands for."""

    main_class: str
    script: str
    takes_bootstrap: bool = True


#: Friendly name -> tool (main classes as in the kafka-tools 4.4.0 jar).
TOOLS: dict[str, KafkaTool] = {
    "consumer-groups": KafkaTool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                                 "kafka-consumer-groups.sh"),
    "console-consumer": KafkaTool("org.apache.kafka.tools.consumer.ConsoleConsumer",
                                  "kafka-console-consumer.sh"),
    "console-producer": KafkaTool("org.apache.kafka.tools.ConsoleProducer", "kafka-console-producer.sh"),
    "topics": KafkaTool("org.apache.kafka.tools.TopicCommand", "kafka-topics.sh"),
    "get-offsets": KafkaTool("org.apache.kafka.tools.GetOffsetShell", "kafka-get-offsets.sh"),
}

BOOTSTRAP_FLAG = "--bootstrap-server"
#: Warnings to stderr only (the broker's logging config, which java_command names, logs INFO).
TOOLS_LOG4J = files("robostream.replay") / "kafka-tools-log4j2.properties"
_HELP_FLAGS = frozenset({"--help", "-h", "--version"})


def tool_for(name: str) -> KafkaTool:
    """The tool of a friendly name; :class:`ReplayError` listing the known ones otherwise."""
    try:
        return TOOLS[name]
    except KeyError:
        raise ReplayError(f"unknown Kafka tool {name!r}; known: {', '.join(TOOLS)}") from None


def with_bootstrap(settings: Settings, args: Sequence[str]) -> list[str]:
    """``args`` with ``--bootstrap-server <kafka.bootstrap>`` first, unless already there (or
    only help is asked for)."""
    given = any(a == BOOTSTRAP_FLAG or a.startswith(BOOTSTRAP_FLAG + "=") for a in args)
    if given or (args and all(a in _HELP_FLAGS for a in args)):
        return list(args)
    return [BOOTSTRAP_FLAG, settings.kafka.bootstrap, *args]


def tool_command(settings: Settings, name: str, args: Sequence[str], *, install: bool = True) -> list[str]:
    """The ``java ... <MainClass> <args>`` command line of a Kafka tool against the stack."""
    from robostream.stack.process import StackError
    from robostream.stack.servers import KafkaServer

    tool = tool_for(name)
    server = KafkaServer(settings)
    if shutil.which("java") is None:
        raise ReplayError("java is not on the PATH (Java 17+ runs Kafka's tools: "
                          "apt-get install -y openjdk-17-jre-headless)")
    if install:
        try:
            server.install()
        except StackError as exc:
            raise ReplayError(str(exc)) from None
    final = with_bootstrap(settings, args) if tool.takes_bootstrap else list(args)
    command = server.java_command(tool.main_class, *final)
    main = command.index(tool.main_class)
    return [*command[:main], f"-Dlog4j2.configurationFile={TOOLS_LOG4J}", *command[main:]]


def run_tool(settings: Settings, name: str, args: Sequence[str]) -> int:
    """Run a Kafka tool with this terminal's stdin/stdout/stderr; returns its exit status."""
    command = tool_command(settings, name, args)
    return subprocess.run(command, check=False).returncode
