"""``robostream api``: run the ML-Dash API until Ctrl-C / SIGTERM."""

from __future__ import annotations

from typing import Annotated

import typer

from robostream.cli.options import listen_host, listen_port
from robostream.cli.serving import serve_until_signal
from robostream.config import load_settings

app = typer.Typer(
    help="Run the ML-Dash API: WS /v1/live, GET /v1/robots, /v1/sessions, /v1/telemetry, /v1/frames, "
    "/v1/stats/{metric}, /openapi.json and the viewer page at /. Listens on api.host:api.port.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def run(
    host: Annotated[str | None, listen_host("api.host")] = None,
    port: Annotated[int | None, listen_port("api.port")] = None,
) -> None:
    """Serve until interrupted."""
    from robostream.api import serve_api  # only this command needs the API's imports

    settings = load_settings()
    serve_until_signal(lambda stop: serve_api(settings, host=host, port=port, stop=stop))
