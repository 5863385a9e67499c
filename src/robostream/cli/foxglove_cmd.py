"""``robostream foxglove``: serve live robots to the Foxglove app until Ctrl-C / SIGTERM."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from robostream.cli.options import listen_host, listen_port
from robostream.cli.serving import serve_until_signal
from robostream.config import load_settings

app = typer.Typer(
    help="Serve live robots over the Foxglove WebSocket protocol: open Foxglove, Open connection > "
    "Foxglove WebSocket, ws://foxglove.host:foxglove.port. Pose, transform and joints per robot, "
    "camera images and point clouds as they arrive. See docs/foxglove.md.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def run(
    host: Annotated[str | None, listen_host("foxglove.host")] = None,
    port: Annotated[int | None, listen_port("foxglove.port")] = None,
) -> None:
    """Serve until interrupted."""
    from robostream.foxglove.service import FoxgloveServiceError, serve_foxglove

    settings = load_settings()
    try:
        serve_until_signal(lambda stop: serve_foxglove(settings, host=host, port=port, stop=stop))
    except FoxgloveServiceError as exc:
        Console(stderr=True, highlight=False).print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
