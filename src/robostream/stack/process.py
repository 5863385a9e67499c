"""Supervised server processes: start detached, track by PID file, stop only what we started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psutil

from robostream.errors import RobostreamError


class StackError(RobostreamError):
    """A server of the local stack could not be installed, started, checked or stopped."""


@dataclass(frozen=True)
class ProcessRecord:
    """What ``stack up`` wrote about a process it started (``<state>/run/<name>.json``)."""

    name: str
    pid: int
    create_time: float
    command: list[str]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def process(self) -> psutil.Process | None:
        """The live process if it is still the one we started (guards against PID reuse)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == "zombie":
                return None
            return proc
        except psutil.Error:
            return None


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as fh:
            return b"".join(deque(fh, maxlen=lines)).decode("utf-8", "replace")
    except OSError:
        return ""


def port_owner(port: int) -> str:
    """A short description of who listens on ``port`` on this machine, if we can tell."""
    with contextlib.suppress(psutil.Error, PermissionError):
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid:
                    with contextlib.suppress(psutil.Error):
                        proc = psutil.Process(conn.pid)
                        return f"pid {conn.pid} ({proc.name()})"
                return "another process"
    return "another process"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing accepts connections on ``host:port`` and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def spawn(name: str, command: list[str], log_path: Path, cwd: Path,
          env: dict[str, str] | None = None) -> ProcessRecord:
    """Start ``command`` in its own session, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== robostream stack: starting {name}: {' '.join(command)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        except OSError as exc:
            raise StackError(f"{name}: cannot run {command[0]}: {exc}") from exc
    return ProcessRecord(name, proc.pid, psutil.Process(proc.pid).create_time(), command)


def terminate(record: ProcessRecord, timeout_s: float) -> bool:
    """Stop the process group we started: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns False if the process was already gone.
    """
    proc = record.process()
    if proc is None:
        return False
    procs = [proc, *proc.children(recursive=True)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    _reap(record.pid)
    return True


def _reap(pid: int) -> None:
    # When the stack runs inside the process that spawned it (tests), collect the zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(check: object, timeout_s: float, interval_s: float = 0.25) -> bool:
    """Call ``check()`` until it returns True or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(interval_s)
    return False


def dir_size(path: Path) -> int:
    """Total bytes of the files below ``path`` (0 if missing)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total
