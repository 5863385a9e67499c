"""``robostream topics``: create, list and check the Kafka topics robostream uses."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from robostream.config import Settings, load_settings
from robostream.topics import (
    CreateReport,
    CreateStatus,
    ListedTopic,
    TopicAdminError,
    TopicSpec,
    TopicState,
    create_topics,
    describe,
    list_topics,
)
from robostream.topics.admin import DEFAULT_TIMEOUT_S

app = typer.Typer(
    help=(
        "Create, list and check robostream's Kafka topics: one topic per robot data type "
        "(<prefix>.<data_type>, e.g. robot.time_series), RPC requests/responses, sessions, "
        "the dead letter queue (robot.dlq) and the derived topics the stream processors write. "
        "Names, partitions and retention come from the `topics` section of config.yaml."
    ),
    no_args_is_help=True,
)

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", "-b", metavar="HOST:PORT",
        help="Kafka broker(s) to talk to. Default: kafka.bootstrap from config.yaml "
             "(or ROBOSTREAM_KAFKA__BOOTSTRAP).",
    ),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="Seconds to wait for Kafka before giving up."),
]


def _settings(bootstrap: str | None) -> Settings:
    """The settings with ``--bootstrap`` in place of ``kafka.bootstrap``.

    A bad value is a :class:`ConfigError` naming the key, like a bad config.yaml: the CLI's
    entry point prints it and exits 2.
    """
    settings = load_settings()
    if bootstrap is None:
        return settings
    return load_settings(kafka={**settings.kafka.model_dump(), "bootstrap": bootstrap})


def _console() -> Console:
    return Console(highlight=False)


def _fail(exc: TopicAdminError) -> typer.Exit:
    Console(stderr=True, highlight=False).print(f"[red]error:[/] {exc}")
    return typer.Exit(2)


# --- formatting ---------------------------------------------------------------------------------


def duration(ms: int | None) -> str:
    """``604800000`` -> ``7d``; ``None`` (compacted) -> ``forever``."""
    if ms is None or ms < 0:
        return "forever"
    hours, rest = divmod(ms, 3_600_000)
    if rest:
        return f"{ms / 1000:g}s"
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def size(value: str | None) -> str:
    """``8388608`` -> ``8 MiB``; ``1000`` -> ``1000 B``."""
    if value is None or not value.isdigit():
        return value or "-"
    n = int(value)
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.3g} KiB"
    return f"{n / (1024 * 1024):.3g} MiB"


def readable(setting: str, value: str) -> str:
    """A config value with a human hint: ``604800000`` (retention.ms) -> ``604800000 (7d)``."""
    if setting.endswith(".ms") and value.lstrip("-").isdigit():
        return f"{value} ({duration(int(value))})"
    if setting.endswith(".bytes") and value.isdigit():
        return f"{value} ({size(value)})"
    return value


def _retention(spec: TopicSpec) -> str:
    if spec.cleanup_policy == "compact":
        return "compacted"
    return duration(spec.retention_ms)


# --- create -------------------------------------------------------------------------------------


_STATUS_STYLE = {
    CreateStatus.CREATED: "[green]created[/]",
    CreateStatus.EXISTS: "[dim]already exists (untouched)[/]",
    CreateStatus.FAILED: "[red]FAILED[/]",
}


def _create_table(report: CreateReport) -> Table:
    table = Table(title="robostream topics")
    for column in ("Topic", "Partitions", "Retention", "Result"):
        table.add_column(column, no_wrap=column == "Topic")
    for result in report.results:
        status = _STATUS_STYLE[result.status]
        if result.error:
            status += f" {result.error}"
        table.add_row(result.spec.name, str(result.spec.partitions),
                      _retention(result.spec), status)
    return table


@app.command("create")
def create(bootstrap: Bootstrap = None, timeout: Timeout = DEFAULT_TIMEOUT_S) -> None:
    """Create every robostream topic that does not exist yet.

    Safe to run again and again: topics that already exist are left exactly as they are
    (run `robostream topics describe` to see whether they still match the catalogue).
    Exits 1 if Kafka refused a topic (the reason is printed), 2 if Kafka cannot be reached.
    """
    try:
        report = create_topics(_settings(bootstrap), timeout=timeout)
    except TopicAdminError as exc:
        raise _fail(exc) from None
    console = _console()
    console.print(_create_table(report))
    counts = {s: len(report.with_status(s)) for s in CreateStatus}
    console.print(f"{counts[CreateStatus.CREATED]} created, {counts[CreateStatus.EXISTS]} already "
                  f"existed, {counts[CreateStatus.FAILED]} failed")
    if not report.ok:
        raise typer.Exit(1)


# --- list ---------------------------------------------------------------------------------------


def _list_row(topic: ListedTopic) -> list[str]:
    status = "[green]present[/]" if topic.exists else "[yellow]missing[/]"
    spec = topic.spec
    if spec is None:
        return [topic.name, str(topic.partitions), "-", "-", status,
                "[yellow]not in the catalogue[/]"]
    return [topic.name, str(topic.partitions or "-"), spec.key, _retention(spec), status,
            spec.purpose]


def _list_table(topics: list[ListedTopic]) -> Table:
    table = Table(title="robostream topics", show_lines=True)
    for column in ("Topic", "Parts", "Key", "Retention", "Status"):
        table.add_column(column, no_wrap=True)
    table.add_column("Holds")
    for topic in topics:
        table.add_row(*_list_row(topic))
    return table


@app.command("list")
def list_(bootstrap: Bootstrap = None, timeout: Timeout = DEFAULT_TIMEOUT_S) -> None:
    """List robostream's topics: what each holds, its key, retention and whether it exists.

    Also shows topics under the configured prefix that the catalogue does not know about.
    """
    try:
        topics = list_topics(_settings(bootstrap), timeout=timeout)
    except TopicAdminError as exc:
        raise _fail(exc) from None
    table = _list_table(topics)
    console = _console()
    console.print(table)
    missing = sum(1 for t in topics if t.spec is not None and not t.exists)
    if missing:
        console.print(f"{missing} topic(s) missing: run `robostream topics create`")


# --- describe -----------------------------------------------------------------------------------


def _state_status(state: TopicState) -> str:
    if not state.exists:
        return "[red]missing[/]"
    return "[red]DRIFT[/]" if state.drift else "[green]ok[/]"


def _state_row(state: TopicState) -> list[str]:
    spec = state.spec
    actual_retention = state.configs.get("retention.ms")
    retention = (_retention(spec) if spec.cleanup_policy == "compact" or actual_retention is None
                 else duration(int(actual_retention)))
    return [spec.name, f"{spec.partitions} / {state.partitions or '-'}",
            state.configs.get("cleanup.policy", "-"), retention,
            size(state.configs.get("max.message.bytes")), _state_status(state)]


def _drift_table(states: list[TopicState]) -> Table:
    table = Table(title="drift from the catalogue")
    for column in ("Topic", "Setting", "Expected", "Actual"):
        table.add_column(column, no_wrap=column in ("Topic", "Setting"))
    for state in states:
        for d in state.drift:
            table.add_row(d.topic, d.setting, readable(d.setting, d.expected),
                          readable(d.setting, d.actual))
    return table


@app.command("describe")
def describe_(bootstrap: Bootstrap = None, timeout: Timeout = DEFAULT_TIMEOUT_S) -> None:
    """Compare the topics on Kafka with the catalogue and report any drift.

    Drift is a missing topic, a different partition count or replication factor, or a topic
    config (retention.ms, cleanup.policy, max.message.bytes, ...) that differs from what
    robostream expects. Each difference is printed with the expected and actual value.
    Exits 0 when everything matches, 1 on drift, 2 if Kafka cannot be reached.
    """
    try:
        states = describe(_settings(bootstrap), timeout=timeout)
    except TopicAdminError as exc:
        raise _fail(exc) from None
    table = Table(title="robostream topics (partitions: expected / actual)")
    for column in ("Topic", "Partitions", "Cleanup", "Retention", "Max message", "Status"):
        table.add_column(column, no_wrap=column == "Topic")
    for state in states:
        table.add_row(*_state_row(state))
    console = _console()
    console.print(table)
    drifted = [s for s in states if s.drift]
    if not drifted:
        console.print(f"all {len(states)} topics match the catalogue")
        return
    console.print(_drift_table(drifted))
    console.print(f"{len(drifted)} topic(s) drifted from the catalogue; missing topics can be "
                  "created with `robostream topics create`, other drift must be fixed by hand "
                  "(kafka-configs / kafka-topics) or by recreating the topic")
    raise typer.Exit(1)
