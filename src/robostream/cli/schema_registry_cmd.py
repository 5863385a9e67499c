"""``robostream schema-registry``: run the Confluent-compatible Schema Registry."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from robostream.config import Settings, load_settings
from robostream.schemas.registry import serve_registry

app = typer.Typer(
    help="Run the Confluent-compatible Schema Registry (REST API; schemas stored in the "
    "compacted Kafka topic schema_registry.topic). Listens on schema_registry.url by default.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def run(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: from the URL).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on (default: from the URL).")
    ] = None,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(settings, host, port))
    except (RuntimeError, OSError) as exc:  # Kafka unreachable, topic unusable, port taken
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


async def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve_registry(settings, host, port, stop=stop)
