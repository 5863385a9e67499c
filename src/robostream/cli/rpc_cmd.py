"""``robostream rpc call``: call a method on a robot through Kafka and the gateway, print the answer."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from robostream.config import load_settings

if TYPE_CHECKING:
    from robostream.rpc import RpcReply

#: Exit status per outcome (2 is a usage error: a bad option, id, method or --params).
EXIT_CODES = {"ok": 0, "robot_error": 1, "no_answer": 3, "refused": 4}
EXIT_UNAVAILABLE = 5
START_WAIT_S = 10.0  # longest wait for Kafka and the schema registry before the call

app = typer.Typer(
    help=(
        "Call robots (RPC). `call` sends a request to a robot over the platform's RPC path (the "
        "rpc.requests topic, the gateway, the robot's WebSocket) and waits for its answer on "
        "rpc.responses. See docs/rpc.md."
    ),
    no_args_is_help=True,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per message, whatever the width


@app.callback()
def rpc() -> None:
    """Call robots (a group of commands, even with one: `rpc call`)."""


def parse_params(text: str) -> Any:
    """``--params`` as JSON; ``typer.BadParameter`` says what is wrong."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON ({exc.msg} at character {exc.pos}): {text!r:.80}. "
                                 "Quote it for the shell: --params '{\"exposure_ms\": 8}'") from None


CALL_HELP = "\n\n".join((
    "Call METHOD on a robot and print what it returns.",
    "The request reaches the robot over its WebSocket to the gateway; a robot that is offline gets "
    "it if it connects before --timeout. Simulated robots answer ping, get_status, "
    "get_joint_state, get_parameters, set_parameter and camera.set_exposure.",
    "Prints the robot's result as JSON on stdout and exits 0. Otherwise prints why on stderr and "
    "exits 1 when the robot answered with an error (e.g. unknown_method, invalid_params), 3 when "
    "no answer came before --timeout (robot offline, busy or too slow), 4 when the gateway "
    "refused (unknown robot, too many waiting requests, shutting down), 5 when Kafka or the "
    "schema registry did not answer, 2 for a bad option.",
    "Example: robostream rpc call --robot robot_001 camera.set_exposure --params "
    "'{\"camera\": \"front\", \"exposure_ms\": 8}'",
))


@app.command("call", help=CALL_HELP)
def call(
    method: Annotated[str, typer.Argument(metavar="METHOD",
                                          help="Method the robot answers, e.g. ping, get_status, "
                                               "camera.set_exposure.")],
    robot: Annotated[str, typer.Option("--robot", "-r", metavar="ROBOT_ID", help="The robot to call.")],
    params: Annotated[str, typer.Option("--params", "-p", metavar="JSON",
                                        help="The method's arguments as JSON, e.g. "
                                             "'{\"camera\": \"front\", \"exposure_ms\": 8}'.")] = "{}",
    timeout: Annotated[float, typer.Option("--timeout", "-t", metavar="SECONDS", min=0.1,
                                           help="How long to wait for the answer. A robot that is "
                                                "not connected gets the request if it connects in "
                                                "this time.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole reply (status, result, "
                                                         "error, correlation_id, elapsed_ms) as JSON.")]
    = False,
) -> None:
    """Call METHOD on a robot and print what it returns (see CALL_HELP)."""
    arguments = parse_params(params)
    from robostream.rpc import RpcCallError, RpcInputError, check_request
    from robostream.rpc.caller import LIBRDKAFKA_LOG

    LIBRDKAFKA_LOG.setLevel(logging.CRITICAL)  # an unreachable Kafka is said once, below

    try:
        check_request(robot, method, arguments, timeout)
    except RpcInputError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        reply = asyncio.run(_call(robot, method, arguments, timeout))
    except RpcCallError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    show(reply, timeout, as_json)
    raise typer.Exit(EXIT_CODES[reply.outcome])


async def _call(robot: str, method: str, params: Any, timeout_s: float) -> RpcReply:
    from robostream.rpc import RpcCaller

    caller = RpcCaller(load_settings())
    await caller.start(wait_s=START_WAIT_S)
    try:
        return await caller.call(robot, method, params, timeout_s=timeout_s)
    finally:
        await caller.close()


def show(reply: RpcReply, timeout: float, as_json: bool) -> None:
    """The result on stdout; anything else as a sentence on stderr."""
    if as_json:
        typer.echo(reply.model_dump_json(indent=2))
    elif reply.outcome == "ok":
        typer.echo(json.dumps(reply.model_dump(mode="json")["result"], indent=2, ensure_ascii=False))
    if reply.outcome == "ok":
        return
    error = reply.error
    detail = f"{error.code}: {error.message}" if error else reply.status
    if reply.outcome == "robot_error":
        text = f"robot {reply.robot_id} answered {reply.method} with an error: {detail}"
    elif reply.outcome == "no_answer":
        text = (f"timeout: no answer from robot {reply.robot_id} to {reply.method} within {timeout:g} s "
                f"({detail})")
    else:
        text = f"the call to robot {reply.robot_id} was refused: {detail}"
    err.print(f"[red]error:[/] {text}")
    sys.stderr.flush()
