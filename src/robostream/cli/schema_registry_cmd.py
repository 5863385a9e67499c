"""``robostream schema-registry``: run the Confluent-compatible Schema Registry."""

from __future__ import annotations

from typing import Annotated

import typer

from robostream.cli.options import listen_host, listen_port
from robostream.cli.serving import serve_until_signal
from robostream.config import load_settings

app = typer.Typer(
    help="Run the Confluent-compatible Schema Registry (REST API; schemas stored in the "
    "compacted Kafka topic schema_registry.topic). Listens on schema_registry.url by default.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def run(
    host: Annotated[str | None, listen_host("from the URL")] = None,
    port: Annotated[int | None, listen_port("from the URL")] = None,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    from robostream.schemas.registry import serve_registry  # only this command needs it

    settings = load_settings()
    try:
        serve_until_signal(lambda stop: serve_registry(settings, host, port, stop=stop))
    except (RuntimeError, OSError) as exc:  # Kafka unreachable, topic unusable, port taken
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
