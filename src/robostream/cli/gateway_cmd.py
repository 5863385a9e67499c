"""``robostream gateway``: run the ingest gateway until Ctrl-C / SIGTERM (then shut down gracefully)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from robostream.cli.options import listen_host, listen_port
from robostream.cli.serving import serve_until_signal
from robostream.config import load_settings

app = typer.Typer(
    help="Run the ingest gateway: WS /v1/stream, POST /v1/ingest, GET /healthz, GET /metrics "
    "(wire protocol: docs/gateway.md). Listens on gateway.host:gateway.port; TLS with "
    "gateway.tls_cert/tls_key.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def run(
    host: Annotated[str | None, listen_host("gateway.host")] = None,
    port: Annotated[int | None, listen_port("gateway.port")] = None,
) -> None:
    """Serve until interrupted; on SIGINT/SIGTERM stop accepting, flush, ack and close."""
    from robostream.gateway import GatewayStartError, serve_gateway  # only this command needs them

    settings = load_settings()
    try:
        serve_until_signal(lambda stop: serve_gateway(settings, host=host, port=port, stop=stop))
    except GatewayStartError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
