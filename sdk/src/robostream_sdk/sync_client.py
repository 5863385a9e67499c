"""``SyncRobotClient``: :class:`RobotClient` for code that is not async (ROS 2 callbacks, control loops).

    with SyncRobotClient("ws://127.0.0.1:8080", "robot_001", token=TOKEN) as client:
        client.start_session()
        while running:
            client.send("time_series", {"t": [now_us], "pose": {...}})   # returns at once
        result = client.flush(timeout_s=5)   # result.unacked_messages: what waits for the gateway

The asyncio client runs on its own event loop in a daemon thread. ``send`` validates, numbers and
packs the envelope in the caller's thread (so a bad payload raises there, and the caller may reuse
its dicts and arrays right after), then hands the bytes to the loop and returns: it never waits for
the network, the gateway or the loop. Batching, the disk spool, reconnects and resends happen on
the loop thread; what the gateway has not acked stays in the spool, for this run or the next.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from robostream_sdk.client import Prepared, RobotClient
from robostream_sdk.contract import DataType
from robostream_sdk.counters import Counters
from robostream_sdk.session import EndReason, SessionConfig, SessionStats

log = logging.getLogger("robostream_sdk")
T = TypeVar("T")

#: how long a call waits for the loop beyond its own timeout (the loop only does local work)
LOOP_GRACE_S = 10.0


@dataclass(frozen=True)
class FlushResult:
    """What :meth:`SyncRobotClient.flush` or ``close`` left unacked; true when all was acked.

    ``unacked_batches``/``unacked_messages``: spooled on disk, not yet acked by the gateway (they
    are resent after a reconnect, or by the next process using the same spool).
    """

    unacked_batches: int
    unacked_messages: int

    @property
    def drained(self) -> bool:
        """Every message sent so far was acked."""
        return self.unacked_batches == 0 and self.unacked_messages == 0

    def __bool__(self) -> bool:
        return self.drained


class SyncRobotClient:
    """A :class:`RobotClient` driven from blocking code; its event loop runs in a background thread.

    Thread-safe: several threads may ``send`` at once (seqs follow the order of the calls). Only
    ``start``/``start_session`` make a concurrent ``send`` wait (for local work on the loop:
    opening the spool, the session's start event); ``flush``/``end_session``/``close`` never do.
    """

    def __init__(self, gateway_url: str, robot_id: str, **kwargs: Any) -> None:
        """As :class:`RobotClient` (``token``, ``options``, ``rpc_handler``, ``listener``, ``transport``)."""
        self._attach(RobotClient(gateway_url, robot_id, **kwargs))

    @classmethod
    def from_settings(cls, settings: Any, robot_id: str, **kwargs: Any) -> SyncRobotClient:
        """A client configured from ``config.yaml``, as :meth:`RobotClient.from_settings`."""
        self = cls.__new__(cls)
        self._attach(RobotClient.from_settings(settings, robot_id, **kwargs))
        return self

    def _attach(self, client: RobotClient) -> None:
        self.client = client
        self._lock = threading.Lock()  # seq order = the order batches are handed to the loop
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"robostream-{client.robot_id}",
                                        daemon=True)
        self._thread.start()

    # -- state -----------------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return self.client.counters

    @property
    def session_id(self) -> str | None:
        return self.client.session_id

    @property
    def state(self) -> str:
        """idle, connecting, connected, backing_off, refused, unreachable or stopped."""
        return self.client.state

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def last_error(self) -> str | None:
        return self.client.last_error

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (resending what a previous run left unacked) and start connecting."""
        with self._lock:
            self._call(self.client.start())

    def start_session(self, config: SessionConfig | Mapping[str, Any] | None = None, *,
                      session_id: str | None = None) -> str:
        """Start a recording session (ending the current one); seq starts at 0. Returns its id."""
        if self.client.session_id is not None:
            self.end_session(reason="aborted")
        with self._lock:  # no send may be numbered while seq restarts
            self._check_open()
            return self._call(self.client.start_session(config, session_id=session_id))

    def send(self, data_type: DataType | str, payload: dict[str, Any],
             timestamp: float | datetime | None = None) -> int:
        """Queue one envelope of the current session and return its ``seq`` without waiting.

        Raises ``ValidationError``/``ValueError`` (bad envelope) as :meth:`RobotClient.send`, and
        ``RuntimeError`` with no session or after ``close``.
        """
        with self._lock:
            self._check_open()
            prepared = self.client.prepare(data_type, payload, timestamp)
            self._loop.call_soon_threadsafe(self._enqueue, prepared)
        return prepared.seq

    def flush(self, timeout_s: float | None = 30.0) -> FlushResult:
        """Close the open batch and wait up to ``timeout_s`` for every ack; returns what is unacked.

        Everything sent before the call is covered (it reaches the loop first).
        """
        self._check_open()
        return self._call(self._flush(timeout_s), _grace(timeout_s))

    def end_session(self, *, reason: EndReason = "completed",
                    timeout_s: float | None = 30.0) -> SessionStats:
        """Flush, wait up to ``timeout_s`` for every ack, send the session end. Returns its stats.

        ``stats.drained`` says whether everything was acked; :meth:`flush` tells how much was not.
        """
        self._check_open()
        return self._call(self.client.end_session(reason=reason, timeout_s=timeout_s), _grace(timeout_s))

    def close(self, timeout_s: float = 10.0) -> FlushResult:
        """Spool the open batch, wait up to ``timeout_s`` for acks, stop the thread; returns what is unacked.

        Unacked batches stay in the spool for the next process. Later calls return the same result.
        """
        with self._lock:  # a send after this raises; every send before it reaches the loop first
            if self._closed:
                return self._unacked()
            self._closed = True
        try:
            return self._call(self._close(timeout_s), _grace(timeout_s))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(LOOP_GRACE_S)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> SyncRobotClient:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.client.session_id is not None and not self._closed:
            self.end_session(reason="completed" if exc is None else "aborted")
        self.close()

    # -- internals (the coroutines and callbacks run on the loop thread) ------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the client is closed")

    def _enqueue(self, prepared: Prepared) -> None:
        try:
            self.client.enqueue(prepared)
        except (OSError, RuntimeError):  # disk full or gone: the caller has returned, so say it loudly
            log.exception("Robot %s: cannot spool seq %d (%d messages); dropped", self.client.robot_id,
                          prepared.seq, prepared.messages)
            self.client.counters.dropped += prepared.messages

    async def _flush(self, timeout_s: float | None) -> FlushResult:
        await self.client.flush(timeout_s)
        return self._unacked()

    async def _close(self, timeout_s: float) -> FlushResult:
        await self.client.close(timeout_s)
        return self._unacked()

    def _unacked(self) -> FlushResult:
        spool = self.client.spool
        batching = self.client.counters.batching
        if spool is None:
            return FlushResult(0, batching)
        return FlushResult(spool.pending_batches, spool.pending_messages + batching)


def _grace(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else timeout_s + LOOP_GRACE_S
