"""The live per-robot progress display (rich) and the summary table at the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from robostream.simulator.runner import SimulatedRobot, SimulationReport
from robostream_sdk import Counters


def _kb(nbytes: float) -> str:
    return f"{nbytes / 1024:,.1f}KB" if nbytes < 10 * 1024 * 1024 else f"{nbytes / 1024 / 1024:,.1f}MB"


def progress_table(robots: Sequence[SimulatedRobot], duration_s: float) -> Table:
    """One row per robot: state, progress, messages and what became of them."""
    table = Table(title="robostream simulate", expand=False, title_justify="left")
    for name, justify in (("robot", "left"), ("state", "left"), ("progress", "left"), ("messages", "right"),
                          ("msg/s", "right"), ("sent", "right"), ("acked", "right"), ("spooled", "right"),
                          ("resent", "right"), ("lost", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for robot in robots:
        counters: Counters = robot.sink.counters
        elapsed = min(robot.elapsed(), duration_s)
        state = "done" if robot.done else getattr(robot.sink, "state", "?")
        colour = {"connected": "green", "done": "blue"}.get(state, "yellow")
        rate = counters.created / elapsed if elapsed > 0 else 0.0
        table.add_row(
            robot.plan.robot_id, f"[{colour}]{state}[/]",
            ProgressBar(total=duration_s, completed=elapsed, width=24),
            f"{counters.created:,}", f"{rate:,.0f}", _kb(counters.bytes_sent), f"{counters.acked:,}",
            f"{counters.spooled:,}", f"{counters.resent:,}",
            f"[red]{counters.lost:,}[/]" if counters.lost else "0",
        )
    return table


async def show_progress(robots: Sequence[SimulatedRobot], duration_s: float, console: Console) -> None:
    """Refresh the table four times a second until cancelled."""
    with Live(progress_table(robots, duration_s), console=console, refresh_per_second=4,
              transient=True) as live, contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(0.25)
            live.update(progress_table(robots, duration_s))


def summary_table(report: SimulationReport) -> Table:
    """Messages, bytes, acked, spooled, rejected and lost per robot, and the totals."""
    table = Table(title=f"Summary ({report.wall_s:.0f}s)", title_justify="left")
    for name in ("robot", "session", "messages", "records", "bytes", "acked", "spooled", "rejected", "lost"):
        table.add_column(name, justify="left" if name in ("robot", "session") else "right")
    for robot in report.robots:
        c = robot.counters
        records = robot.stats.records if robot.stats else c["records_sent"]
        table.add_row(robot.robot_id, robot.session_id, f"{c['created']:,}", f"{records:,}",
                      _kb(c["bytes_sent"]), f"{c['acked']:,}", f"{c['spooled']:,}", f"{c['rejected']:,}",
                      f"{c['lost']:,}")
    if len(report.robots) > 1:
        records = sum((r.stats.records if r.stats else 0) for r in report.robots)
        totals = [f"{report.total(k):,}" for k in ("acked", "spooled", "rejected", "lost")]
        table.add_row("total", "", f"{report.total('created'):,}", f"{records:,}",
                      _kb(report.total("bytes_sent")), *totals, style="bold")
    return table
