"""``robostream stack``: the local embedded stack of real servers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from robostream.config import Settings, load_settings
from robostream.stack import ServerStatus, Stack, StackError
from robostream.stack.process import ProcessRecord
from robostream.stack.report import landed as landed_report
from robostream.stack.servers import ProcessorService

app = typer.Typer(
    help="Run the local stack (Apache Kafka, SecantusDB, SeaweedFS S3, Redis, the schema registry) "
    "on 127.0.0.1, and with --services robostream's own services. Ports come from the endpoints in "
    "config.yaml; data, logs and PIDs live in stack.state_dir.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

Names = Annotated[
    list[str] | None,
    typer.Argument(help="Servers to act on (kafka, mongo, s3, redis, schema-registry, gateway, "
                        "sinks, sinks-live, processors, api, foxglove; on a Kafka cluster kafka "
                        "means every node, kafka-2 one of them); default: all.",
                   show_default=False),
]


def _stack() -> Stack:
    settings = load_settings()
    running = running_kafka_nodes(settings)
    if running > settings.stack.kafka_brokers:
        # a cluster `stack up --kafka-brokers N` started: status, down and logs see every node
        os.environ[BROKERS_ENV] = str(running)
        settings = load_settings()
    return Stack(settings, on_event=lambda msg: err.print(f"[dim]{msg}[/]", highlight=False))


BROKERS_ENV = "ROBOSTREAM_STACK__KAFKA_BROKERS"


def running_kafka_nodes(settings: Settings) -> int:
    """How many Kafka cluster nodes (``kafka-1`` ...) of this state folder ``stack up`` started."""
    run = settings.state_dir / "run"
    records = [ProcessRecord.load(run / f"kafka-{i}.json") for i in range(1, 6)]
    return sum(1 for r in records if r is not None and r.process() is not None)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n //= 1024
    return f"{n} TB"


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_status(rows: list[ServerStatus]) -> None:
    """Render ``stack status`` as a table."""
    table = Table(title="robostream local stack")
    for col in ("server", "state", "port", "pid", "version", "data", "log"):
        table.add_column(col)
    colors = {"healthy": "green", "external": "yellow", "unhealthy": "red", "stopped": "dim"}
    for r in rows:
        table.add_row(r.name, f"[{colors[r.state]}]{r.state}[/]", str(r.port),
                      str(r.pid or "-"), r.version, _size(r.data_bytes), _short(r.log))
    console.print(table)


def print_problems(stack: Stack, rows: list[ServerStatus]) -> None:
    """Under the table: why an unhealthy service that can tell (the processors) is unhealthy."""
    unhealthy = {r.name for r in rows if r.state == "unhealthy"}
    for server in stack.servers:
        if server.name in unhealthy and isinstance(server, ProcessorService):
            reason = server.problem()
            if reason:
                err.print(f"[red]{server.name}:[/] {reason}", highlight=False)


def _fail(exc: StackError) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}", highlight=False)
    return typer.Exit(1)


@app.command()
def install(names: Names = None) -> None:
    """Fetch what the servers need (Kafka's jars via Maven, redis-server) without starting them."""
    stack = _stack()
    try:
        stack.install(names)
    except StackError as exc:
        raise _fail(exc) from None


@app.command()
def up(
    names: Names = None,
    services: Annotated[bool, typer.Option(
        "--services",
        help="Also start robostream's services: gateway, sinks, sinks-live, processors, api, "
             "foxglove.")] = False,
    kafka_brokers: Annotated[int | None, typer.Option(
        "--kafka-brokers", min=1, max=5, show_default=False,
        help="Kafka nodes to run (default: stack.kafka_brokers, 1). 3 gives a local KRaft cluster "
             "(kafka-1..3, ports 9092/9094/9096): topics get 3 replicas and need 2 in sync to take a "
             "write, so one broker can die without losing an acked record. Set stack.kafka_brokers "
             "in config.yaml (or ROBOSTREAM_STACK__KAFKA_BROKERS) so other commands see it too.")] = None,
) -> None:
    """Install what is missing, start the servers and wait until each answers."""
    configured = load_settings().stack.kafka_brokers
    if kafka_brokers is not None:
        os.environ[BROKERS_ENV] = str(kafka_brokers)  # the services this starts inherit it
    stack = _stack()
    try:
        rows = stack.up(names, services=services)
    except StackError as exc:
        raise _fail(exc) from None
    print_status(rows)
    if kafka_brokers is not None and kafka_brokers != configured:
        err.print(f"[yellow]note:[/] {kafka_brokers} Kafka nodes at {stack.settings.kafka.bootstrap}; other "
                  f"commands (topics create, simulate, ...) see them with stack.kafka_brokers: "
                  f"{kafka_brokers} in config.yaml or {BROKERS_ENV}={kafka_brokers}", highlight=False)


@app.command()
def down(names: Names = None) -> None:
    """Stop the servers `stack up` started (data is kept for the next `up`)."""
    stopped = _stack().down(names)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def status() -> None:
    """Show each server's health, port, PID, version and data size; exit 1 if any is down."""
    stack = _stack()
    rows = stack.status()
    print_status(rows)
    print_problems(stack, rows)
    if not all(r.ok for r in rows):
        raise typer.Exit(1)


@app.command()
def report() -> None:
    """Show what landed: records per topic, documents per collection, S3 objects, Redis keys."""
    settings = load_settings()
    landed = landed_report(settings)
    topics = Table(title=f"Kafka topics ({settings.kafka.bootstrap})")
    topics.add_column("topic")
    topics.add_column("records", justify="right")
    for name, count in landed.topics.items():
        topics.add_row(name, f"{count:,}")
    stores = Table(title="Stores")
    for col in ("store", "where", "count"):
        stores.add_column(col, justify="right" if col == "count" else "left")
    for name, count in landed.collections.items():
        stores.add_row("MongoDB", f"{settings.mongo.database}.{name}", f"{count:,} documents")
    for prefix, (objects, size) in landed.s3_objects.items():
        stores.add_row("S3", f"s3://{settings.s3.bucket}/{prefix}", f"{objects:,} objects, {_size(size)}")
    for kind, count in landed.redis_keys.items():
        stores.add_row("Redis", f"{kind}:*", f"{count:,} keys")
    console.print(topics)
    console.print(stores)
    for problem in landed.problems:
        err.print(f"[yellow]could not count[/] {problem}", highlight=False)
    _where_to_look(settings)


def _where_to_look(settings: Settings) -> None:
    api = settings.api
    console.print(f"Viewer:          http://{api.host}:{api.port}/  (API docs: /openapi.json)")
    console.print(f"Foxglove:        ws://{settings.foxglove.host}:{settings.foxglove.port}  "
                  "(Foxglove app: Open connection > Foxglove WebSocket)")
    console.print(f"Gateway:         ws://{settings.gateway.host}:{settings.gateway.port}/v1/stream")
    sinks = settings.sinks
    live = f"  live: http://{sinks.host}:{sinks.rest_port('live')}/connectors" if sinks.split_live else ""
    store = sinks.rest_port("store" if sinks.split_live else "all")
    console.print(f"Sink status:     http://{sinks.host}:{store}/connectors{live}")
    console.print(f"Schema registry: {settings.schema_registry.url}/subjects")
    console.print(f"Kafka:           {settings.kafka.bootstrap}  (robostream kafka console-consumer ...)")


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="kafka (kafka-1, kafka-2, ... on a cluster), mongo, s3, redis, "
                                             "schema-registry or a service")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines to show.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
) -> None:
    """Print the last lines of a server's log."""
    stack = _stack()
    try:
        path = stack.log_path(stack.server(name).name)
    except StackError as exc:
        raise _fail(exc) from None
    if not path.exists():
        raise _fail(StackError(f"no log yet for {name}: {path}"))
    cmd = ["tail", f"-n{lines}", *(["-F"] if follow else []), str(path)]
    raise typer.Exit(subprocess.call(cmd))
