"""``robostream kafka <tool> [args...]``: Apache Kafka's own CLI tools against the stack."""

from __future__ import annotations

from typing import Annotated

import typer

from robostream.cli.replay_cmd import fail
from robostream.config import load_settings

_TOOL_NAMES = "consumer-groups, console-consumer, console-producer, topics, get-offsets"

app = typer.Typer(
    help=(
        "Run one of Apache Kafka's own tools from the stack's jars (Java 17): "
        f"{_TOOL_NAMES} (kafka-<tool>.sh). Arguments after the tool go to it unchanged; "
        "--bootstrap-server comes from kafka.bootstrap unless given. Example: "
        "robostream kafka consumer-groups --describe --group connect-mongo"
    ),
    invoke_without_command=True,
    no_args_is_help=True,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                      "allow_interspersed_args": False},
)


@app.callback(invoke_without_command=True)
def kafka_tool(
    tool: Annotated[str, typer.Argument(metavar="TOOL", help=f"One of: {_TOOL_NAMES}.")],
    args: Annotated[list[str] | None, typer.Argument(
        metavar="[ARGS]...", help="Passed to the tool (e.g. --list, --describe --group G).")] = None,
) -> None:
    """Run Kafka's TOOL with ARGS; exits with the tool's status."""
    from robostream.replay import ReplayError, run_tool

    try:
        status = run_tool(load_settings(), tool, args or [])
    except ReplayError as exc:
        raise fail(exc) from None
    raise typer.Exit(status)


if __name__ == "__main__":
    app()
