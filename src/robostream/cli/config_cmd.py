"""``robostream config``: show or check the effective configuration."""

from __future__ import annotations

import json

import typer

from robostream.config import load_settings

app = typer.Typer(help="Show or check the effective configuration (config.yaml + environment).",
                  no_args_is_help=True)


@app.command("show")
def show() -> None:
    """Print the effective settings as JSON (secrets masked)."""
    settings = load_settings()
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


@app.command("check")
def check() -> None:
    """Validate config.yaml and ROBOSTREAM_* variables; exit 2 naming each bad key."""
    load_settings()
    typer.echo("configuration OK")
