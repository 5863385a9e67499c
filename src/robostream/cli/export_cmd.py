"""``robostream export``: a recorded session as an MCAP file (Foxglove) or JSON Lines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from robostream.cli.replay_cmd import From, Robot, Session, Slack, To, Types, fail, query_from, resolver_for
from robostream.config import load_settings

app = typer.Typer(
    help=(
        "Export a recorded session to a file: MCAP (a JSON-schema channel per data type, zstd "
        "chunks, indexed; Foxglove opens it) or JSON Lines (one envelope per line). "
        "See docs/replay.md."
    ),
    invoke_without_command=True,
    no_args_is_help=True,
)


def format_for(fmt: str | None, output: Path) -> str:
    """``--format``, else from the file name (``.jsonl`` / ``.ndjson``), else ``mcap``."""
    if fmt is not None:
        return fmt.lower()
    return "jsonl" if output.suffix.lower() in (".jsonl", ".ndjson") else "mcap"


@app.callback(invoke_without_command=True)
def export(
    robot: Robot,
    session: Session,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", dir_okay=False,
                                         help="The file to write (replaced when complete).")],
    types: Types = None,
    start: From = None,
    end: To = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", metavar="mcap|jsonl",
        help="File format. Default: jsonl for *.jsonl, else mcap.")] = None,
    foxglove: Annotated[bool, typer.Option(
        "--foxglove/--no-foxglove",
        help="MCAP: also write the Foxglove channels of the live view (pose, tf, joints, images, "
             "point clouds, log; docs/foxglove.md).")] = True,
    slack: Slack = "5m",
) -> None:
    """Export one recorded session (the progress bar counts offsets read)."""
    from robostream.replay import BoundError, ExportFormat, ReplayError, RichProgress, export_session

    settings = load_settings()
    try:
        chosen = ExportFormat(format_for(fmt, output))
    except ValueError:
        raise fail(f"unknown format {fmt!r}; expected mcap or jsonl") from None
    try:
        query = query_from(robot, session, types, start, end, slack)
        report = export_session(settings, query, output, resolver_for(settings), fmt=chosen,
                                progress=RichProgress(), foxglove=foxglove)
    except (ReplayError, BoundError, ValueError, OSError) as exc:
        raise fail(exc) from None
    console = Console(highlight=False)
    channels = ", ".join(f"{name} {count:,}" for name, count in sorted(report.per_channel.items()))
    console.print(f"wrote {report.path} ({report.format}, {report.size_bytes:,} bytes): "
                  f"{report.records:,} records" + (f" ({channels})" if channels else ""))
    if report.records == 0:
        console.print(f"[yellow]no records of {robot}/{session} in the range read[/]")
    if report.skipped:
        console.print(f"{report.skipped} undecodable record(s) skipped")


if __name__ == "__main__":
    app()
