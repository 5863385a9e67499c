"""Shared helpers of the benchmark scripts: machine and versions, median/spread, tables, JSON
reports and robostream services spawned as child processes (``robostream.stack.process``).

Every script in ``bench/`` imports this module as ``_common`` (the scripts run as
``python bench/<name>.py``, so ``bench/`` is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from robostream.stack.process import ProcessRecord, spawn, tail, terminate, wait_until

__all__ = ["wait_until"]

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PROFILES = RESULTS / "profiles"


# -- machine, versions, report -------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load average says how shared the machine was)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names), plus Python's; '-' if missing."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    if "confluent-kafka" in names:
        import confluent_kafka

        out["librdkafka"] = confluent_kafka.libversion()[0]
    return out


def report(name: str, parameters: dict[str, Any], results: dict[str, Any],
           versions_: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON every script writes: benchmark, created, machine, versions, parameters, results."""
    return {
        "benchmark": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions_ if versions_ is not None else versions("robostream"),
        "parameters": parameters,
        "results": results,
        **extra,
    }


def write_json(data: dict[str, Any], out: Path) -> Path:
    """Write ``data`` as indented JSON to ``out`` (folders created); returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str))
    return out


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def latency_ms(samples: Sequence[float]) -> dict[str, float]:
    """n, p50, p99, p99.9 and max in ms of latencies given in seconds."""
    return {"n": len(samples), "p50_ms": percentile(samples, 50) * 1000,
            "p99_ms": percentile(samples, 99) * 1000, "p999_ms": percentile(samples, 99.9) * 1000,
            "max_ms": (max(samples) if samples else float("nan")) * 1000}


def median_spread(values: Iterable[float]) -> dict[str, Any]:
    """Median of repeated runs and their spread: min, max and (max - min) / median in %."""
    data = [float(v) for v in values]
    if not data:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "spread_pct": 0.0, "n": 0}
    median = statistics.median(data)
    spread = 100 * (max(data) - min(data)) / median if median else 0.0
    return {"median": median, "min": min(data), "max": max(data), "spread_pct": spread, "n": len(data),
            "runs": data}


def fmt_spread(stat: dict[str, Any], digits: int = 0, unit: str = "") -> str:
    """``12,345 ±3%`` (the spread only when there were several runs)."""
    text = f"{stat['median']:,.{digits}f}{unit}"
    return text + (f" ±{stat['spread_pct'] / 2:.0f}%" if stat.get("n", 0) > 1 else "")


# -- tables --------------------------------------------------------------------------------------


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], width: int = 200) -> None:
    """A rich table; the first column left-aligned, the others right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=width).print(table)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- services ------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def url_ok(url: str) -> bool:
    """True if GET ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


@dataclass
class Service:
    """A robostream service (``python -m robostream <args>``) in a child process of its own session.

    Started with :func:`robostream.stack.process.spawn`, stopped with its ``terminate`` (SIGTERM to
    the process group, then SIGKILL); ``health_url`` (200 when ready) or, without one, staying
    alive for ``settle_s`` counts as started. Tracks CPU seconds and peak RSS (children included).
    """

    name: str
    args: Sequence[str]
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    settle_s: float = 3.0
    python_args: Sequence[str] = ()  # e.g. ['-m', 'pyinstrument', ...] before '-m robostream'
    record: ProcessRecord | None = None
    peak_rss: int = 0
    _sampler: threading.Thread | None = None
    _stop_sampling: threading.Event = field(default_factory=threading.Event)

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.record is not None, f"{self.name} not started"
        return self.record.pid

    def start(self, timeout_s: float = 90) -> Service:
        """Spawn the process and wait until it is healthy (raises with the log's tail if not)."""
        return self.spawn().wait(timeout_s)

    def spawn(self) -> Service:
        """Start the process without waiting (several services then start side by side)."""
        command = [sys.executable, *self.python_args, "-m", "robostream", *self.args]
        self.record = spawn(self.name, command, self.log, ROOT, env=self.env)
        return self

    def wait(self, timeout_s: float = 90) -> Service:
        """Wait until the spawned process is healthy; then sample its RSS in the background."""
        ready = wait_until(self._ready, timeout_s, 0.3)
        if not ready or not self.alive():
            self.stop()
            raise RuntimeError(f"{self.name} did not start; its log ends with:\n{tail(self.log, 40)}")
        self._sampler = threading.Thread(target=self._sample, name=f"rss-{self.name}", daemon=True)
        self._sampler.start()
        return self

    def _ready(self) -> bool:
        if not self.alive():
            return True  # wait_until stops; start() reports the death
        if self.health_url is not None:
            return url_ok(self.health_url)
        assert self.record is not None
        return bool(time.time() - self.record.create_time >= self.settle_s)

    def alive(self) -> bool:
        return self.record is not None and self.record.process() is not None

    def processes(self) -> list[psutil.Process]:
        proc = self.record.process() if self.record else None
        if proc is None:
            return []
        with contextlib.suppress(psutil.Error):
            return [proc, *proc.children(recursive=True)]
        return [proc]

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process and its children so far."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss(self) -> int:
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def reset_peak(self) -> None:
        self.peak_rss = self.rss()

    def _sample(self) -> None:
        while not self._stop_sampling.wait(0.25):
            self.peak_rss = max(self.peak_rss, self.rss())

    def stop(self, timeout_s: float = 30) -> None:
        self._stop_sampling.set()
        if self.record is not None:
            terminate(self.record, timeout_s)
