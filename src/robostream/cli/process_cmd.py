"""``robostream process``: run the stream processors (Faust workers) until Ctrl-C / SIGTERM."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from robostream.config import ConfigError, load_settings

app = typer.Typer(
    help="Run the stream processors (a Faust app): bucketing, 1s/1m/1h aggregations and frame "
    "compaction from <prefix>.time_series and <prefix>.images to the derived topics "
    "(docs/processors.md). Workers of the same processors.app_id split the partitions.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def run(
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", min=1, help="Worker processes (default: processors.workers)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Worker name in logs and status.")] = None,
    status_file: Annotated[
        Path | None,
        typer.Option("--status-file", help="Write throughput and assigned partitions here (JSON); "
                     "with several workers, a folder for worker-N.json files."),
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run until interrupted; SIGTERM stops the workers cleanly (their partitions move on)."""
    from robostream.processors.worker import ProcessorStartError, run_worker, run_workers

    settings = load_settings()
    count = workers or settings.processors.workers
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if count > 1:
        if status_file is not None:
            status_file.mkdir(parents=True, exist_ok=True)
        sys.exit(run_workers(count, status_dir=status_file, loglevel=loglevel,
                             metrics_port=settings.processors.metrics_port))
    try:
        run_worker(settings, worker_name=name, status_file=status_file, loglevel=loglevel)
    except ProcessorStartError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


def main() -> None:
    """Entry point of ``python -m robostream.processors``."""
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
