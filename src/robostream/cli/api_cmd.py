"""``robostream api``: run the ML-Dash API until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from robostream.api import serve_api
from robostream.config import Settings, load_settings

app = typer.Typer(
    help="Run the ML-Dash API: WS /v1/live, GET /v1/robots, /v1/sessions, /v1/telemetry, /v1/frames, "
    "/v1/stats/{metric}, /openapi.json and the viewer page at /. Listens on api.host:api.port.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def run(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: api.host).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on (default: api.port).")] = None,
) -> None:
    """Serve until interrupted."""
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve(settings, host, port))


async def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve_api(settings, host=host, port=port, stop=stop)
