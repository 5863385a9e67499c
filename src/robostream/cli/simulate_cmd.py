"""``robostream simulate``: robots streaming at the seed's rates through the SDK to the gateway."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.logging import RichHandler

from robostream.config import load_settings

if TYPE_CHECKING:  # the simulator and the SDK are imported by this command only, when it runs
    from robostream.simulator import SimulatedRobot, SimulationOptions, SimulationReport

app = typer.Typer(
    help="Simulate robots: 100 Hz pose/joints/IMU, 30 Hz force/torque, 1 Hz metrics, camera bursts "
    "(RGB, depth, point cloud) and every other data type, streamed through the robot SDK "
    "(batching, disk spool, reconnects) to the gateway. Options default to config.yaml "
    "(simulator, rates, batching, robots).",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def simulate(
    robots: Annotated[int, typer.Option("--robots", "-n", min=1, max=1000, help="Robots to simulate.")] = 3,
    duration: Annotated[float, typer.Option("--duration", "-d", min=0.1, help="Seconds to stream.")] = 300.0,
    gateway: Annotated[str | None, typer.Option(
        "--gateway", help="Gateway URL, e.g. ws://127.0.0.1:8080 (default: simulator.gateway_url or "
        "gateway.host:port).")] = None,
    transport: Annotated[str | None, typer.Option(
        "--transport", help="ws or https (default: simulator.transport).")] = None,
    media: Annotated[bool | None, typer.Option(
        "--media/--no-media", help="Camera bursts, audio and video (default: simulator.media).")] = None,
    resolution: Annotated[str | None, typer.Option(
        "--resolution", help="Camera resolution WxH or 360p/720p/1080p (1080p = 1920x1080 full-HD originals; "
        "default: rates.resolution, 640x360).",
    )] = None,
    spool_dir: Annotated[Path | None, typer.Option(
        "--spool-dir", help="Spool directory, one sub-folder per robot (default: batching.spool_dir).",
    )] = None,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Live progress table (on a terminal).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every batch.")] = False,
) -> None:
    """Stream until the duration has passed (Ctrl-C ends every session early); print a summary."""
    if transport not in (None, "ws", "https"):
        raise typer.BadParameter("--transport must be ws or https")
    chosen: Literal["ws", "https"] | None = "https" if transport == "https" else (
        "ws" if transport == "ws" else None)
    from robostream.simulator import SimulationOptions
    from robostream.simulator.progress import summary_table
    from robostream_sdk import SpoolLockedError

    settings = load_settings()
    console = Console(stderr=True)
    live = progress and console.is_terminal
    _logging(console, verbose, rich=live)
    options = SimulationOptions.from_settings(
        settings, robots=robots, duration_s=duration, gateway_url=gateway, transport=chosen, media=media,
        resolution=resolution, spool_dir=spool_dir, progress=live,
    )
    try:
        report = asyncio.run(_run(options, console))
    except SpoolLockedError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    out = Console()
    (out if out.is_terminal else Console(width=130)).print(summary_table(report))
    if report.total("lost"):
        sys.exit(1)


async def _run(options: SimulationOptions, console: Console) -> SimulationReport:
    from robostream.simulator import run_simulation
    from robostream.simulator.progress import show_progress

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():  # a second Ctrl-C: the next one interrupts at once
            loop.remove_signal_handler(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    def watch(robots: list[SimulatedRobot]) -> asyncio.Task[None] | None:
        if not options.progress:
            return None
        return asyncio.create_task(show_progress(robots, options.duration_s, console))

    return await run_simulation(options, stop=stop, on_start=watch)


def _logging(console: Console, verbose: bool, *, rich: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler
    if rich:
        handler = RichHandler(console=console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("robostream.simulator", "robostream_sdk"):
        logging.getLogger(name).setLevel(level)
