"""``robostream offsets reset``: move a consumer group, as ``kafka-consumer-groups --reset-offsets``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from robostream.cli.replay_cmd import fail
from robostream.config import load_settings

if TYPE_CHECKING:
    from robostream.replay import ResetPlan, ResetSpec

app = typer.Typer(
    help=(
        "Consumer group offsets. `reset` moves a group (e.g. a sink's connect-<name>, the "
        "processors' app id) to a time, a duration ago, a shift or the earliest offsets, so its "
        "consumers read the data again: the semantics of kafka-consumer-groups --reset-offsets "
        "(the plan is shown first; the group must be inactive). See docs/replay.md."
    ),
    no_args_is_help=True,
)


@app.callback()
def offsets() -> None:
    """Consumer group offsets (a group of commands, even with one: `offsets reset`)."""


def spec_from(to_datetime: str | None, by_duration: str | None, shift_by: int | None,
              to_earliest: bool, to_latest: bool, to_offset: int | None) -> ResetSpec:
    """The one reset strategy given on the command line."""
    from robostream.replay import ResetSpec, Strategy, parse_duration, parse_time

    chosen = [name for name, given in (
        ("--to-datetime", to_datetime is not None), ("--by-duration", by_duration is not None),
        ("--shift-by", shift_by is not None), ("--to-earliest", to_earliest),
        ("--to-latest", to_latest), ("--to-offset", to_offset is not None)) if given]
    if len(chosen) != 1:
        raise ValueError("choose exactly one of --to-datetime, --by-duration, --shift-by, "
                         f"--to-earliest, --to-latest, --to-offset (got {', '.join(chosen) or 'none'})")
    if to_datetime is not None:
        return ResetSpec(Strategy.TO_DATETIME, time=parse_time(to_datetime))
    if by_duration is not None:
        return ResetSpec(Strategy.BY_DURATION, duration=parse_duration(by_duration))
    if shift_by is not None:
        return ResetSpec(Strategy.SHIFT_BY, amount=shift_by)
    if to_offset is not None:
        return ResetSpec(Strategy.TO_OFFSET, amount=to_offset)
    return ResetSpec(Strategy.TO_EARLIEST if to_earliest else Strategy.TO_LATEST)


def plan_table(plan: ResetPlan) -> Table:
    """GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET CHANGE, as Kafka's tool prints (plus the change)."""
    table = Table(box=None, pad_edge=False)
    for column in ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET", "CHANGE"):
        table.add_column(column, justify="right" if column not in ("GROUP", "TOPIC") else "left")
    for change in plan.changes:
        delta = change.delta
        table.add_row(plan.group, change.topic, str(change.partition),
                      "-" if change.current is None else str(change.current), str(change.new),
                      "-" if delta is None else f"{delta:+d}")
    return table


@app.command("reset")
def reset(
    group: Annotated[str, typer.Option("--group", "-g", metavar="GROUP",
                                       help="The consumer group (a sink's is connect-<connector>).")],
    to_datetime: Annotated[str | None, typer.Option(
        "--to-datetime", metavar="TIME",
        help="First offset with a Kafka timestamp at or after TIME (ISO-8601; no offset: UTC).",
    )] = None,
    by_duration: Annotated[str | None, typer.Option(
        "--by-duration", metavar="DURATION",
        help="As --to-datetime at now minus DURATION (PT10M, 10m).")] = None,
    shift_by: Annotated[int | None, typer.Option(
        "--shift-by", metavar="N", help="Committed offset plus N (negative: read N records again).")] = None,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="The start of each partition.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="The end of each partition.")] = False,
    to_offset: Annotated[int | None, typer.Option("--to-offset", metavar="N", help="Offset N.")] = None,
    topics: Annotated[list[str] | None, typer.Option(
        "--topics", "--topic", metavar="TOPIC[:P,P]",
        help="Topics (and partitions) to reset, repeatable. Default: every partition the group "
             "has committed offsets for.")] = None,
    execute: Annotated[bool, typer.Option(
        "--execute/--dry-run", help="Apply the plan. Default: --dry-run (only show it).")] = False,
) -> None:
    """Plan a reset of GROUP's offsets and, with --execute, apply it."""
    from robostream.replay import BoundError, ReplayError, execute_reset, plan_reset

    settings = load_settings()
    console = Console(highlight=False)
    try:
        spec = spec_from(to_datetime, by_duration, shift_by, to_earliest, to_latest, to_offset)
        plan = plan_reset(settings, group, spec, topics)
    except (ReplayError, BoundError, ValueError) as exc:
        raise fail(exc) from None
    console.print(f"group {group} ({plan.state}, {plan.members} member(s)), {spec}:")
    console.print(plan_table(plan))
    if not execute:
        note = "" if plan.inactive else f"; the group is {plan.state}: stop its consumers before --execute"
        console.print(f"dry run: nothing changed ({plan.rereads:,} record(s) would be read again"
                      f"{note}). Add --execute to apply.")
        return
    try:
        execute_reset(settings, plan)
    except ReplayError as exc:
        raise fail(exc) from None
    console.print(f"reset applied to {len(plan.changes)} partition(s) of group {group}; "
                  f"{plan.rereads:,} record(s) will be read again when its consumers start.")


if __name__ == "__main__":
    app()
