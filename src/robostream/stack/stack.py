"""The local embedded stack: bring every server up, report health, bring it down."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from robostream.config import Settings
from robostream.stack.process import (
    ProcessRecord,
    StackError,
    dir_size,
    port_is_free,
    port_owner,
    spawn,
    tail,
    terminate,
    wait_until,
)
from robostream.stack.servers import Server, all_servers

State = Literal["healthy", "unhealthy", "stopped", "external"]


@dataclass(frozen=True)
class ServerStatus:
    """One row of ``robostream stack status``."""

    name: str
    state: State
    port: int
    pid: int | None
    version: str
    data_bytes: int
    log: Path
    service: bool = False

    @property
    def ok(self) -> bool:
        """Healthy, or a service that simply was not started."""
        return self.state in ("healthy", "external") or (self.service and self.state == "stopped")


class Stack:
    """Supervises the servers of the local stack under ``settings.stack.state_dir``.

    ``up`` starts what is not running and waits until every server answers; ``down`` stops only
    processes whose PID file ``up`` wrote (and whose start time still matches).
    """

    def __init__(self, settings: Settings, servers: Iterable[Server] | None = None,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir
        self.servers = list(servers) if servers is not None else all_servers(settings)
        self._say = on_event or (lambda _msg: None)

    def server(self, name: str) -> Server:
        """The server called ``name`` (``kafka`` on a cluster: its first node)."""
        return self.named([name])[0]

    def named(self, names: Iterable[str]) -> list[Server]:
        """The servers called ``names``; a group name (``kafka``) stands for all its members."""
        chosen: list[Server] = []
        for name in names:
            found = [s for s in self.servers if s.name == name] or [
                s for s in self.servers if s.group == name]
            if not found:
                known = ", ".join(s.name for s in self.servers)
                raise StackError(f"unknown server {name!r}; the stack has: {known}")
            chosen += [s for s in found if s not in chosen]
        return chosen

    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def _record_path(self, name: str) -> Path:
        return self.state_dir / "run" / f"{name}.json"

    def record(self, name: str) -> ProcessRecord | None:
        """The process ``up`` started for ``name``, if it is still running."""
        rec = ProcessRecord.load(self._record_path(name))
        return rec if rec is not None and rec.process() is not None else None

    # -- up -----------------------------------------------------------------------------------

    def up(self, names: Iterable[str] | None = None, services: bool = False) -> list[ServerStatus]:
        """Install, start and health-check the servers; returns their status.

        By default the infrastructure servers start; ``services`` adds robostream's own
        (gateway, sinks, processors, ...). Raises :class:`StackError` naming the server, and the
        port or the last log lines.
        """
        chosen = self._chosen(names, services)
        to_start = [s for s in chosen if self.record(s.name) is None]
        running = [s for s in self.servers if s not in to_start and self.record(s.name)]
        self._check_ports(to_start)
        self.install(s.name for s in to_start)
        for wave in _waves(to_start, running):
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                list(pool.map(self._start, wave))
        return [self.status_of(s) for s in chosen]

    def _chosen(self, names: Iterable[str] | None, services: bool) -> list[Server]:
        if names:
            return self.named(names)
        return [s for s in self.servers if services or not s.service]

    def install(self, names: Iterable[str] | None = None) -> None:
        """Fetch what the servers need; quick when done before."""
        for server in self.named(names) if names else self.servers:
            server.install()

    def _check_ports(self, servers: list[Server]) -> None:
        for server in servers:
            for port in server.ports():
                if not port_is_free(port):
                    raise StackError(
                        f"{server.name}: port {port} on 127.0.0.1 is already in use by "
                        f"{port_owner(port)}. Stop that process or choose another port in "
                        "config.yaml (or ROBOSTREAM_* variables), e.g. a test stack beside a dev stack."
                    )

    def _start(self, server: Server) -> None:
        server.prepare()
        log = self.log_path(server.name)
        record = spawn(server.name, server.command(), log, cwd=server.cwd, env=server.env())
        record.save(self._record_path(server.name))
        self._say(f"started {server.name} (pid {record.pid}), waiting for it to answer")
        started = time.monotonic()

        def ready() -> bool:
            if record.process() is None:
                raise StackError(
                    f"{server.name} exited during start-up. Last lines of {log}:\n{tail(log)}"
                )
            return server.healthy()

        if not wait_until(ready, self.settings.stack.start_timeout_s, interval_s=0.3):
            raise StackError(
                f"{server.name} did not become healthy within {self.settings.stack.start_timeout_s:.0f}"
                f" s. Last lines of {log}:\n{tail(log)}"
            )
        self._say(f"{server.name} healthy in {time.monotonic() - started:.1f} s")

    # -- down -----------------------------------------------------------------------------------

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop the servers ``up`` started; returns the names stopped.

        Services stop first (they flush into the servers below them), then the rest at once.
        """
        chosen = self.named(names) if names else self.servers
        services = [s for s in chosen if s.service]
        return self._stop_all(services) + self._stop_all([s for s in chosen if not s.service])

    def _stop_all(self, chosen: list[Server]) -> list[str]:
        with ThreadPoolExecutor(max_workers=len(chosen) or 1) as pool:
            results = list(pool.map(self._stop, chosen))
        return [s.name for s, stopped in zip(chosen, results, strict=True) if stopped]

    def _stop(self, server: Server) -> bool:
        path = self._record_path(server.name)
        rec = ProcessRecord.load(path)
        stopped = rec is not None and terminate(rec, self.settings.stack.stop_timeout_s)
        if stopped and rec is not None:
            self._say(f"stopped {server.name} (pid {rec.pid})")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return stopped

    # -- status ---------------------------------------------------------------------------------

    def status_of(self, server: Server) -> ServerStatus:
        rec = self.record(server.name)
        # a service we did not start is simply stopped (some have no port to probe)
        healthy = server.healthy() if rec is not None or not server.service else False
        version = "-"
        if healthy:
            with contextlib.suppress(Exception):
                version = server.version()
        state: State
        if rec is None:
            state = "external" if healthy else "stopped"
        else:
            state = "healthy" if healthy else "unhealthy"
        return ServerStatus(server.name, state, server.port, rec.pid if rec else None, version,
                            dir_size(server.data_dir), self.log_path(server.name), server.service)

    def status(self) -> list[ServerStatus]:
        """The health, version, port, PID and data size of every server."""
        with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
            return list(pool.map(self.status_of, self.servers))


def _waves(servers: list[Server], running: list[Server]) -> list[list[Server]]:
    """Group servers so that each starts after the ones it depends on (``Server.after`` names
    servers or groups: ``kafka`` waits for every Kafka node)."""
    pending = list(servers)
    missing = {dep for s in servers for dep in s.after} - {s.group for s in [*running, *servers]}
    if missing:
        raise StackError(f"start {', '.join(sorted(missing))} first (robostream stack up)")
    waves: list[list[Server]] = []
    while pending:
        names = {s.group for s in pending}
        wave = [s for s in pending if not names.intersection(s.after)]
        if not wave:
            raise StackError(f"dependency cycle between {sorted(names)}")
        waves.append(wave)
        pending = [s for s in pending if s not in wave]
    return waves
