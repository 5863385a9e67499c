"""Connector and task states, as Kafka Connect's REST API shows them.

States: ``UNASSIGNED`` (not started yet), ``RUNNING``, ``PAUSED`` (paused by the user through
the REST API, or by the runtime while the store is down: ``paused_reason`` says which),
``FAILED`` (with ``trace``), ``STOPPED`` (worker shut down).

A task thread writes its :class:`TaskStatus`; the REST thread reads snapshots. Every access
takes the status's lock, so a snapshot is consistent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


class PauseReason(StrEnum):
    USER = "user"
    STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Consumer lag of one assigned partition: ``end`` (high watermark) - ``committed``."""

    topic: str
    partition: int
    committed: int | None
    end: int | None

    @property
    def lag(self) -> int | None:
        if self.end is None:
            return None
        return max(0, self.end - (self.committed or 0))

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "committed": self.committed,
                "end": self.end, "lag": self.lag}


@dataclass
class TaskStatus:
    """The live status of one task (thread-safe)."""

    task_id: int
    worker_id: str
    state: State = State.UNASSIGNED
    trace: str | None = None
    paused_reason: PauseReason | None = None
    retry_attempt: int = 0
    next_retry_at: float | None = None
    last_error: str | None = None
    records_written: int = 0
    records_failed: int = 0
    batches: int = 0
    commits: int = 0
    lag: list[PartitionLag] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, **changes: Any) -> None:
        """Update fields atomically."""
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def add(self, **increments: int) -> None:
        """Add to counters atomically."""
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, Any]:
        """The REST shape of ``GET /connectors/{name}/status`` ``tasks[]``."""
        with self._lock:
            out: dict[str, Any] = {"id": self.task_id, "state": self.state.value,
                                   "worker_id": self.worker_id}
            if self.trace is not None:
                out["trace"] = self.trace
            if self.paused_reason is not None:
                out["paused_reason"] = self.paused_reason.value
            if self.retry_attempt:
                wait = None if self.next_retry_at is None else max(0.0, self.next_retry_at - time.monotonic())
                out["retry"] = {"attempt": self.retry_attempt, "last_error": self.last_error,
                                "next_retry_in_ms": None if wait is None else int(wait * 1000)}
            known = [p.lag for p in self.lag if p.lag is not None]
            out["lag"] = {"total": sum(known) if known else None,
                          "partitions": [p.to_dict() for p in self.lag]}
            out["metrics"] = {"records_written": self.records_written,
                              "records_failed": self.records_failed, "batches": self.batches,
                              "commits": self.commits}
            return out


def connector_state(task_states: list[State], user_paused: bool, failed: bool) -> State:
    """The connector's state from its tasks': FAILED, PAUSED (by the user or all tasks), RUNNING."""
    if failed:
        return State.FAILED
    if user_paused or (task_states and all(s is State.PAUSED for s in task_states)):
        return State.PAUSED
    if task_states and all(s is State.STOPPED for s in task_states):
        return State.STOPPED
    if task_states and all(s is State.UNASSIGNED for s in task_states):
        return State.UNASSIGNED
    return State.RUNNING
