"""Entry point: ``robostream <command>``; sub-command groups live beside this file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from robostream import __version__
from robostream.cli import (
    api_cmd,
    config_cmd,
    export_cmd,
    foxglove_cmd,
    gateway_cmd,
    kafka_cmd,
    offsets_cmd,
    process_cmd,
    replay_cmd,
    rpc_cmd,
    schema_registry_cmd,
    simulate_cmd,
    sink_cmd,
    stack_cmd,
    topics_cmd,
)
from robostream.config import ConfigError

app = typer.Typer(
    name="robostream",
    help="Kafka-centric streaming platform for robot data. Start with `robostream stack up`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_cmd.app, name="stack")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(schema_registry_cmd.app, name="schema-registry")
app.add_typer(gateway_cmd.app, name="gateway")
app.add_typer(process_cmd.app, name="process")
app.add_typer(sink_cmd.app, name="sink")
app.add_typer(api_cmd.app, name="api")
app.add_typer(foxglove_cmd.app, name="foxglove")
app.add_typer(simulate_cmd.app, name="simulate")
app.add_typer(replay_cmd.app, name="replay")
app.add_typer(export_cmd.app, name="export")
app.add_typer(offsets_cmd.app, name="offsets")
app.add_typer(kafka_cmd.app, name="kafka")
app.add_typer(config_cmd.app, name="config")
app.add_typer(rpc_cmd.app, name="rpc")

err = Console(stderr=True)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="ROBOSTREAM_CONFIG",
            help="Path to config.yaml (default: ./config.yaml).",
        ),
    ] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    if config is not None:
        import os

        if not config.is_file():
            err.print(f"[red]error:[/] config file not found: {config}")
            raise typer.Exit(2)
        os.environ["ROBOSTREAM_CONFIG"] = str(config)


def main() -> None:
    """Run the CLI; configuration errors exit with status 2 and a readable message."""
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
