"""``robostream sink``: run the sink connectors (MongoDB, S3, Redis) and show their status."""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from robostream.cli.options import listen_port
from robostream.config import SinkRole, load_settings
from robostream.gctuning import freeze_startup_heap

app = typer.Typer(
    help=(
        "Kafka-Connect-style sink workers: land robot topics in MongoDB, S3 and Redis. "
        "Connectors are declared under `connectors:` in config.yaml; offsets are committed only "
        "after a write is durable. A REST status API (Kafka Connect's shape) runs beside them "
        "on sinks.host:sinks.port (the live worker's on sinks.live_port)."
    ),
    no_args_is_help=True,
)

ConnectorOption = Annotated[
    list[str] | None,
    typer.Option("--connector", "-n", metavar="NAME",
                 help="Run only this connector (repeatable). Default: every enabled connector."),
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", metavar="URL",
                 help="REST API of a running worker. Default: the store worker's "
                      "(sinks.port) and the live worker's (sinks.live_port)."),
]
RoleOption = Annotated[
    SinkRole,
    typer.Option("--role",
                 help="all: every enabled connector; live: those of sinks.live_kinds (Redis, the "
                      "live view's path) on sinks.live_port; store: the others (MongoDB, S3), at "
                      "a lower CPU priority (sinks.store_niceness)."),
]


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, highlight=False).print(f"[red]error:[/] {message}")
    return typer.Exit(2)


@app.command("run")
def run(
    connector: ConnectorOption = None,
    role: RoleOption = "all",
    port: Annotated[int | None, listen_port(
        help_text="REST API port (0: any free port; default: sinks.port, the live worker's "
                  "sinks.live_port).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING ...")] = "INFO",
) -> None:
    """Run connectors until Ctrl-C / SIGTERM (each task lands and commits what it holds)."""
    from robostream.sinks import ConnectorConfigError, Worker, lower_priority

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if connector and role != "all":
        raise _fail("give either --connector or --role, not both")
    settings = load_settings()
    if role == "store":
        lower_priority(settings.sinks.store_niceness)
    try:
        worker = Worker(settings, connector, role=role, port=port)
    except ConnectorConfigError as exc:
        raise _fail(str(exc)) from None
    freeze_startup_heap()
    worker.run_forever()


def _put(url: str) -> None:
    request = urllib.request.Request(url, method="PUT")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass
    except urllib.error.HTTPError as exc:
        raise _fail(f"{url}: HTTP {exc.code} {exc.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _fail(f"no sink worker answers at {url} ({exc})") from None


def _worker_urls(url: str | None) -> list[str]:
    """``--url``, or the store worker's and (when split) the live worker's REST API."""
    if url is not None:
        return [url.rstrip("/")]
    sinks = load_settings().sinks
    roles: list[SinkRole] = ["store", "live"] if sinks.split_live else ["all"]
    ports = [sinks.rest_port(role) for role in roles]
    return [f"http://{sinks.host}:{port}" for port in ports]


def _answering(url: str | None) -> dict[str, Any]:
    """``GET /connectors?expand=status`` of every worker that answers, merged by connector."""
    merged: dict[str, Any] = {}
    silent = []
    for base in _worker_urls(url):
        try:
            with urllib.request.urlopen(f"{base}/connectors?expand=status", timeout=5) as resp:  # noqa: S310
                merged.update(json.loads(resp.read()))
        except (urllib.error.URLError, OSError):
            silent.append(base)
    if silent and not merged:
        raise _fail(f"no sink worker answers at {', '.join(silent)}; is `robostream sink run` running?")
    for base in silent:
        Console(stderr=True, highlight=False).print(f"[yellow]note:[/] no sink worker answers at {base}")
    return merged


def _holder(name: str, url: str | None) -> str:
    """The REST API of the running worker that runs connector ``name``."""
    for base in _worker_urls(url):
        with (contextlib.suppress(urllib.error.URLError, OSError, ValueError),
              urllib.request.urlopen(f"{base}/connectors", timeout=5) as resp):  # noqa: S310
            if name in json.loads(resp.read()):
                return base
    raise _fail(f"no running sink worker at {', '.join(_worker_urls(url))} runs connector {name!r}")


def _task_row(name: str, state: str, task: dict[str, Any]) -> list[str]:
    lag = task.get("lag", {}).get("total")
    metrics = task.get("metrics", {})
    note = task.get("paused_reason") or ""
    if task.get("retry"):
        note = f"{note} retry #{task['retry']['attempt']}: {task['retry'].get('last_error') or ''}"
    if task.get("trace"):
        note = task["trace"].strip().splitlines()[-1]
    return [name, state, str(task["id"]), task["state"], "-" if lag is None else str(lag),
            str(metrics.get("records_written", "")), str(metrics.get("records_failed", "")),
            note[:80]]


@app.command("status")
def status(
    url: UrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the REST answer as JSON.")] = False,
) -> None:
    """Connector and task states, lag and counts of a running worker."""
    statuses = _answering(url)
    if as_json:
        typer.echo(json.dumps(statuses, indent=2))
        return
    table = Table("connector", "state", "task", "task state", "lag", "written", "failed", "note")
    for name, entry in statuses.items():
        status_ = entry["status"]
        for task in status_["tasks"] or [{"id": "-", "state": "-"}]:
            table.add_row(*_task_row(name, status_["connector"]["state"], task))
    Console(highlight=False).print(table)


@app.command("pause")
def pause(name: str, url: UrlOption = None) -> None:
    """Pause a connector (PUT /connectors/NAME/pause)."""
    _put(f"{_holder(name, url)}/connectors/{name}/pause")
    typer.echo(f"{name}: pause requested")


@app.command("resume")
def resume(name: str, url: UrlOption = None) -> None:
    """Resume a connector (PUT /connectors/NAME/resume)."""
    _put(f"{_holder(name, url)}/connectors/{name}/resume")
    typer.echo(f"{name}: resume requested")


@app.command("migrate-telemetry")
def migrate_telemetry(
    batch: Annotated[int, typer.Option("--batch", min=1, help="Old documents per step.")] = 2000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be rewritten.")] = False,
) -> None:
    """Rewrite per-record `telemetry` documents (robostream before minute buckets) into minute
    buckets and the level-of-detail pyramid, then delete them. Safe to interrupt, to run again
    and to run beside the MongoDB connector (docs/sinks.md)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from robostream.sinks.migrate import MigrationReport, old_documents
    from robostream.sinks.migrate import migrate_telemetry as migrate

    settings = load_settings()
    console = Console(highlight=False)
    try:
        with MongoClient[dict[str, Any]](settings.mongo.uri, serverSelectionTimeoutMS=5000,
                                         tz_aware=True) as client:
            db = client[settings.mongo.database]
            left = old_documents(db)
            console.print(f"{left:,} per-record telemetry document(s) in {settings.mongo.database}.telemetry")
            if dry_run or not left:
                return

            def show(report: MigrationReport) -> None:
                console.print(f"  {report.documents:,}/{left:,} documents -> {report.samples:,} samples "
                              f"in minute buckets ({report.sessions} session(s))")

            report = migrate(db, batch=batch, progress=show)
    except PyMongoError as exc:
        raise _fail(f"MongoDB at {settings.mongo.uri}: {type(exc).__name__}: {exc}") from None
    console.print(f"done: {report.documents:,} documents rewritten, {report.samples:,} samples stored")


if __name__ == "__main__":  # `python -m robostream.cli.sink_cmd run` until cli/main.py wires `sink`
    app()
