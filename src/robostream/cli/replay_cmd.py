"""``robostream replay``: re-publish a recorded session into a topic namespace or through the gateway."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from robostream.config import Settings, load_settings

if TYPE_CHECKING:  # the replay part (confluent-kafka, mcap) loads only when a command runs
    from robostream.replay import SessionQuery
    from robostream.schemas import ConfluentSchemaResolver

app = typer.Typer(
    help=(
        "Replay a recorded session: read it back from its data type topics (by time or offset), "
        "keep its recorded timing scaled by --speed, and re-publish it into a topic namespace "
        "(default replay.<prefix>.<data_type>) or through the gateway as the robot. "
        "See docs/replay.md."
    ),
    invoke_without_command=True,
    no_args_is_help=True,
)

Robot = Annotated[str, typer.Option("--robot", "-r", metavar="ROBOT_ID", help="The robot that recorded.")]
Session = Annotated[str, typer.Option("--session", "-s", metavar="SESSION_ID", help="The session to read.")]
Types = Annotated[
    list[str] | None,
    typer.Option("--types", "-t", metavar="TYPE[,TYPE...]",
                 help="Data types to read (repeatable or comma-separated). Default: all 17."),
]
From = Annotated[
    str | None,
    typer.Option("--from", metavar="TIME|OFFSET",
                 help="Start: a time (2024-06-10T12:00:00Z, -10m, now; found with offsets_for_times, "
                      "then the envelope timestamps), an offset in every partition, or earliest. "
                      "Default: the start of the topics."),
]
To = Annotated[
    str | None,
    typer.Option("--to", metavar="TIME|OFFSET",
                 help="End (exclusive): a time, an offset, or latest. Default: the end of the "
                      "topics when the read starts."),
]
Slack = Annotated[
    str,
    typer.Option("--slack", metavar="DURATION",
                 help="How late a record may reach Kafka after its timestamp (time bounds only)."),
]


def fail(message: object) -> typer.Exit:
    """Print ``error: message`` on stderr; the exit to raise."""
    Console(stderr=True, highlight=False).print(f"[red]error:[/] {message}")
    return typer.Exit(2)


def query_from(robot: str, session: str, types: list[str] | None, start: str | None, end: str | None,
               slack: str = "5m") -> SessionQuery:
    """The :class:`~robostream.replay.SessionQuery` of the shared command-line options."""
    from robostream.replay import SessionQuery, parse_bound, parse_duration
    from robostream.replay.bounds import parse_types

    return SessionQuery(robot, session, parse_types(types), parse_bound(start), parse_bound(end),
                        parse_duration(slack))


def resolver_for(settings: Settings) -> ConfluentSchemaResolver:
    """The schema registry client replay and export decode with."""
    from robostream.schemas import ConfluentSchemaResolver

    return ConfluentSchemaResolver(settings.schema_registry.url)


@app.callback(invoke_without_command=True)
def replay_session(
    robot: Robot,
    session: Session,
    types: Types = None,
    start: From = None,
    end: To = None,
    speed: Annotated[str, typer.Option("--speed", metavar="1x|10x|max",
                                       help="Recorded timing divided by this; max: no waiting.")] = "1x",
    to_topic: Annotated[str | None, typer.Option(
        "--to-topic", metavar="NAMESPACE",
        help="Re-publish into NAMESPACE.<data_type> (created like the catalogue). "
             "Default when --to-gateway is not given: replay.<topics.prefix>.")] = None,
    to_gateway: Annotated[str | None, typer.Option(
        "--to-gateway", metavar="URL",
        help="Send through the gateway at URL (ws://, wss://, http://, https://) as the robot.")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="ROBOSTREAM_ROBOT_TOKEN",
        help="The robot's token for --to-gateway (or ROBOSTREAM_ROBOT_TOKEN).")] = None,
    as_session: Annotated[str | None, typer.Option(
        "--as-session", metavar="SESSION_ID",
        help="Session id of the replay through the gateway. Default: <session>-replay.")] = None,
    retime: Annotated[bool, typer.Option(
        "--retime", help="Through the gateway: shift timestamps so the replay starts now.")] = False,
    slack: Slack = "5m",
) -> None:
    """Replay one recorded session (the progress bar counts offsets read)."""
    from robostream.replay import (
        BoundError,
        GatewayPublisher,
        ReplayError,
        RichProgress,
        TopicPublisher,
        default_replay_session,
        parse_speed,
        replay,
    )
    from robostream.topics.catalog import replay_namespace

    settings = load_settings()
    if to_topic is not None and to_gateway is not None:
        raise fail("choose one of --to-topic and --to-gateway")
    try:
        query = query_from(robot, session, types, start, end, slack)
        pace = parse_speed(speed)
        resolver = resolver_for(settings)
        if to_gateway is not None:
            publisher: TopicPublisher | GatewayPublisher = GatewayPublisher(
                settings, to_gateway, robot, as_session or default_replay_session(session),
                token=token or os.environ.get("ROBOSTREAM_ROBOT_TOKEN"), retime=retime)
        else:
            publisher = TopicPublisher(settings, to_topic or replay_namespace(settings),
                                       query.types, resolver)
        report = replay(settings, query, publisher, resolver, speed=pace, progress=RichProgress())
    except (ReplayError, BoundError, ValueError) as exc:
        raise fail(exc) from None
    console = Console(highlight=False)
    types_line = ", ".join(f"{name} {count:,}" for name, count in sorted(report.per_type.items()))
    console.print(f"replayed {report.records:,} records of {robot}/{session} to {report.destination}"
                  + (f" ({types_line})" if types_line else ""))
    console.print(f"recorded span {report.span_s:.3f}s, replayed in {report.paced_s:.3f}s "
                  f"at {speed}; {report.elapsed_s:.1f}s in all"
                  + (f"; {report.skipped} undecodable record(s) skipped" if report.skipped else ""))


if __name__ == "__main__":
    app()
