"""The connection loop: connect, (re)send every unacked batch from the spool, match the acks.

One task per client. On every new connection the spool's unacked batches go first, oldest first
(they may have been sent before: a lost connection or a previous process), then new ones as they
are spooled. At most ``window_batches`` / ``window_bytes`` are unanswered at a time. The gateway
numbers the batch frames of a connection 1, 2, 3 ... and answers each with one ``ack`` (after a
``nack`` per rejected envelope), in order:

* an ack without nacks: the batch is durable; it leaves the spool;
* retriable nacks (Kafka or S3 trouble, shutdown, ``rate_limited``): those envelopes are spooled
  again as a new batch (same seqs) and sent again (not before the nack's ``retry_after_ms``);
* other nacks: the envelopes are counted ``rejected`` (the gateway copied them to its DLQ).

``slow_down`` pauses sending for ``retry_after_ms``; a lost connection is retried with
exponential backoff and jitter (never sooner than a ``Retry-After`` asked).

Batches are ack-clocked (Nagle with ``TCP_NODELAY``'s spirit, like Kafka's small ``linger.ms``):
:attr:`Sender.idle` tells the client that nothing is in flight, so a new envelope goes out at
once; while batches are in flight the client keeps coalescing, and ``on_idle`` fires when the
last ack arrives so that what gathered meanwhile goes out without waiting for a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from robostream_sdk.backoff import Backoff
from robostream_sdk.batcher import Batch, frame_of
from robostream_sdk.counters import Counters, messages_in
from robostream_sdk.errors import SdkError
from robostream_sdk.spool import Spool, SpoolEntry
from robostream_sdk.transport import (
    Connection,
    ConnectionLostError,
    GatewayRefusedError,
    Transport,
    TransportError,
)
from robostream_sdk.wire import (
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    RETRIABLE_CODES,
    envelopes_of,
    pack_envelope,
)

log = logging.getLogger("robostream_sdk")

#: ``listener(kind, info)``: connected, disconnected, batch_sent, batch_acked, rejected.
Listener = Callable[[str, dict[str, Any]], None]
#: ``handler(method, params) -> result``; raise :class:`RpcError` for an error answer.
RpcHandler = Callable[[str, Any], Awaitable[Any]]


class RpcError(SdkError):
    """An RPC handler's error answer: ``code`` (machine-readable) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def unknown_method(cls, method: str, known: Iterable[str]) -> RpcError:
        """The standard answer to a method this robot does not have: ``unknown_method``, naming
        the ones it has."""
        return cls("unknown_method", f"unknown method {method!r:.140}; this robot answers "
                   f"{', '.join(known) or 'no methods'}")


@dataclass
class _Link:
    """State of one connection."""

    conn: Connection
    opened_at: float
    number: int = 0  # batch frames sent on it
    inflight: deque[tuple[int, SpoolEntry]] = field(default_factory=deque)
    inflight_bytes: int = 0
    nacks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    acks: int = 0


class Sender:
    """Keeps the spool flowing to the gateway."""

    def __init__(self, robot_id: str, transport: Transport, spool: Spool, counters: Counters, *,
                 backoff: Backoff, window_batches: int = 64, window_bytes: int = 32 * 1024 * 1024,
                 healthy_after_s: float = 5.0, listener: Listener | None = None,
                 rpc_handler: RpcHandler | None = None,
                 on_connect: Callable[[], list[dict[str, Any]]] | None = None,
                 on_idle: Callable[[], None] | None = None) -> None:
        self.robot_id = robot_id
        self.transport = transport
        self.spool = spool
        self.counters = counters
        self.backoff = backoff
        self.window_batches = max(1, window_batches)
        self.window_bytes = max(1, window_bytes)
        self.healthy_after_s = healthy_after_s
        self.listener = listener
        self.rpc_handler = rpc_handler
        self.on_connect = on_connect
        self.on_idle = on_idle
        self.state = "idle"
        self.last_error: str | None = None
        self.session_events = True  # False once the gateway said it does not know session_event
        self._queue: deque[SpoolEntry] = deque()
        self._link: _Link | None = None
        self._paused_until = 0.0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._drained = asyncio.Event()
        self._rpc_tasks: set[asyncio.Task[None]] = set()
        self._down_since: float | None = None
        self.refresh()

    # -- control ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def idle(self) -> bool:
        """Connected, not paused, nothing in flight or waiting: a batch spooled now goes out at once."""
        link = self._link
        return (link is not None and not link.inflight and not self._queue
                and self._paused_until <= asyncio.get_running_loop().time())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"robostream-sender-{self.robot_id}")

    def enqueue(self, entry: SpoolEntry) -> None:
        """A batch was spooled: send it when the window allows."""
        self._queue.append(entry)
        self._drained.clear()
        self._wake.set()

    async def wait_drained(self, timeout_s: float | None) -> bool:
        """Wait until every spooled batch is acked; False on timeout."""
        self.refresh()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def send_control(self, message: dict[str, Any]) -> bool:
        """Send a control message now if connected over WebSocket; False otherwise."""
        link = self._link
        if link is None or not link.conn.supports_control:
            return False
        try:
            await link.conn.send_control(message)
        except ConnectionLostError:
            return False
        return True

    async def stop(self) -> None:
        """Stop sending and close the connection; unacked batches stay in the spool."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        tasks = [t for t in (self._task, *self._rpc_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.state = "stopped"

    # -- the loop --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self.state = "connecting"
            try:
                conn = await self.transport.connect()
            except GatewayRefusedError as exc:
                self._refused(exc)
                await self._retry_later(exc.retry_after_s)
                continue
            except TransportError as exc:
                self._unreachable(exc)
                await self._retry_later(None)
                continue
            hint = await self._connected(conn)
            if not self._stopping:
                await self._retry_later(hint)

    async def _connected(self, conn: Connection) -> float | None:
        """Serve one connection until it ends; returns a retry hint (seconds) or None."""
        loop = asyncio.get_running_loop()
        link = _Link(conn, loop.time())
        self._link = link
        self._announce_connected()
        hint: float | None = None
        try:
            await self._serve(link)
        except ConnectionLostError as exc:
            hint = self._lost(exc)
        except Exception as exc:  # a bug or an unexpected transport error: reconnect, keep the data
            log.exception("Robot %s: connection failed", self.robot_id)
            self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._link = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        self.counters.disconnects += 1
        self._down_since = time.monotonic()
        if link.acks or loop.time() - link.opened_at >= self.healthy_after_s:
            self.backoff.reset()
        self._emit("disconnected", reason=self.last_error)
        return hint

    def _announce_connected(self) -> None:
        self.state = "connected"
        self.counters.connects += 1
        waiting = self.spool.pending_batches
        if self._down_since is not None:
            down = time.monotonic() - self._down_since
            log.info("Robot %s reconnected after %.1fs; resending %d unacked batches", self.robot_id, down,
                     waiting)
        else:
            log.info("Robot %s connected (%s)", self.robot_id, self.transport.url)
        self._down_since = None
        self.last_error = None
        self._emit("connected", url=self.transport.url, pending=waiting)

    async def _serve(self, link: _Link) -> None:
        self._queue = deque(self.spool.pending())
        if link.conn.supports_control and self.on_connect is not None:
            for message in self.on_connect():
                if message.get("type") != "session_event" or self.session_events:
                    await link.conn.send_control(message)
        reader = asyncio.create_task(self._read(link), name=f"robostream-acks-{self.robot_id}")
        try:
            await self._write(link, reader)
        finally:
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionLostError):
                await reader

    async def _write(self, link: _Link, reader: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            if reader.done():
                reader.result()  # raises ConnectionLostError
                raise ConnectionLostError(None, "the gateway stopped answering")
            self._wake.clear()
            pause = self._paused_until - loop.time()
            entry = self._next(link) if pause <= 0 else None
            if entry is None:
                await self._sleep(reader, pause if pause > 0 else None)
                continue
            frame = self.spool.read(entry)
            link.number += 1
            link.inflight.append((link.number, entry))
            link.inflight_bytes += entry.size
            await link.conn.send_batch(frame, entry.fmt)
            self._count_sent(entry, len(frame))

    async def _sleep(self, reader: asyncio.Task[None], wait_s: float | None) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter, reader}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    def _next(self, link: _Link) -> SpoolEntry | None:
        if link.inflight and (len(link.inflight) >= self.window_batches
                              or link.inflight_bytes >= self.window_bytes):
            return None
        while self._queue:
            entry = self._queue.popleft()
            if self.spool.get(entry.id) is entry:  # not acked or dropped meanwhile
                return entry
        return None

    def _count_sent(self, entry: SpoolEntry, nbytes: int) -> None:
        counters = self.counters
        if entry.attempts or entry.recovered:
            counters.resent += entry.messages
        else:
            counters.sent += entry.messages
            counters.records_sent += entry.records
        entry.attempts += 1
        counters.bytes_sent += nbytes
        counters.batches_sent += 1
        self._emit("batch_sent", entry=entry, bytes=nbytes)

    # -- what the gateway says -------------------------------------------------------------------

    async def _read(self, link: _Link) -> None:
        while True:
            message = await link.conn.receive()
            kind = message["type"]
            if kind == "ack":
                self._on_ack(link, message)
            elif kind == "nack":
                link.nacks.setdefault(message.get("batch", -1), []).append(message)
            elif kind == "slow_down":
                self._on_slow_down(message)
            elif kind == "error":
                self._on_error(message)
            elif kind == "rpc_request":
                self._spawn_rpc(link.conn, message)
            elif kind == "rpc_nack":
                log.warning("Robot %s: the gateway refused an RPC response: %s", self.robot_id,
                            message.get("message"))
            elif kind != "rpc_ack":
                log.debug("Robot %s: ignoring gateway message %r", self.robot_id, kind)

    def _on_ack(self, link: _Link, message: dict[str, Any]) -> None:
        number = message.get("batch")
        while link.inflight and isinstance(number, int) and link.inflight[0][0] < number:
            missed, entry = link.inflight.popleft()  # the gateway skipped one: send it again later
            link.inflight_bytes -= entry.size
            log.warning("Robot %s: no ack for batch %d of this connection; it will be resent",
                        self.robot_id, missed)
        if not link.inflight or link.inflight[0][0] != number:
            log.warning("Robot %s: ack for unknown batch %r ignored", self.robot_id, number)
            return
        _, entry = link.inflight.popleft()
        link.inflight_bytes -= entry.size
        link.acks += 1
        self._settle(entry, link.nacks.pop(number, []))
        self._wake.set()
        if self.on_idle is not None and self.idle:
            self.on_idle()

    def _settle(self, entry: SpoolEntry, nacks: list[dict[str, Any]]) -> None:
        if self.spool.get(entry.id) is not entry:
            return  # dropped at the spool cap meanwhile
        retried = rejected = 0
        if nacks:
            retried, rejected = self._resolve_nacks(entry, nacks)
        self.spool.ack(entry.id)
        counters = self.counters
        counters.acked += entry.messages - retried - rejected
        counters.rejected += rejected
        counters.batches_acked += 1
        counters.spooled = self.spool.pending_messages
        self._emit("batch_acked", entry=entry, rejected=rejected, retried=retried)
        self.refresh()

    def _resolve_nacks(self, entry: SpoolEntry, nacks: list[dict[str, Any]]) -> tuple[int, int]:
        """Split a batch's nacks into envelopes to send again and rejected ones; (messages each)."""
        envelopes = envelopes_of(self.spool.read(entry))
        retry: set[int] = set()
        reject: set[int] = set()
        everything = range(len(envelopes))
        for nack in nacks:
            index = nack.get("index")
            targets = everything if index is None else [index] if 0 <= index < len(envelopes) else []
            retriable = bool(nack.get("retriable", nack.get("code") in RETRIABLE_CODES))
            (retry if retriable else reject).update(targets)
            if retriable:
                self._hold_off(nack)
            else:
                log.warning("Robot %s: gateway rejected %s seq %s: %s", self.robot_id,
                            nack.get("data_type") or "batch", nack.get("seq"), nack.get("message"))
        retry -= reject

        def weight(indexes: set[int]) -> int:
            return sum(messages_in(envelopes[i].get("data_type", ""), envelopes[i].get("payload") or {})
                       for i in indexes)

        if reject:
            self._emit("rejected", session_id=entry.session_id, records=len(reject), messages=weight(reject))
        if retry:
            self._respool(entry, [envelopes[i] for i in sorted(retry)], weight(retry))
        return weight(retry), weight(reject)

    def _respool(self, entry: SpoolEntry, envelopes: list[dict[str, Any]], messages: int) -> None:
        seqs = [int(e.get("seq", 0)) for e in envelopes]
        batch = Batch(entry.session_id, frame_of([pack_envelope(e) for e in envelopes]), len(envelopes),
                      messages, min(seqs), max(seqs), entry.fmt)
        again = self.spool.append(batch)
        if again is None:
            self.counters.dropped += messages
            return
        again.attempts = 1  # a resend, not a first send
        self.enqueue(again)
        log.info("Robot %s: %d envelopes (seqs %d..%d) will be sent again (retriable nack)",
                 self.robot_id, len(envelopes), min(seqs), max(seqs))

    def _hold_off(self, nack: dict[str, Any]) -> None:
        """A retriable nack with ``retry_after_ms`` (``rate_limited``): send nothing for that long."""
        retry_ms = nack.get("retry_after_ms")
        if not isinstance(retry_ms, (int, float)) or retry_ms <= 0:
            return
        until = asyncio.get_running_loop().time() + retry_ms / 1000
        if until > self._paused_until:
            self._paused_until = until
            log.info("Robot %s: gateway says %s; pausing %.3fs", self.robot_id, nack.get("code"),
                     retry_ms / 1000)

    def _on_slow_down(self, message: dict[str, Any]) -> None:
        retry_ms = message.get("retry_after_ms")
        delay = retry_ms / 1000 if isinstance(retry_ms, (int, float)) and retry_ms > 0 else 1.0
        self._paused_until = asyncio.get_running_loop().time() + delay
        self.counters.slow_downs += 1
        log.info("Robot %s: gateway asked to slow down (%s); pausing %.1fs", self.robot_id,
                 message.get("scope", "?"), delay)

    def _on_error(self, message: dict[str, Any]) -> None:
        code, text = message.get("code"), str(message.get("message"))
        if code == "unknown_message_type" and "session_event" in text:
            if self.session_events:
                log.info("Robot %s: this gateway does not take session_event messages; session start/end "
                         "events are not sent", self.robot_id)
            self.session_events = False
            return
        self.last_error = f"{code}: {text}"
        log.warning("Robot %s: gateway error %s: %s", self.robot_id, code, text)

    # -- connection trouble ----------------------------------------------------------------------

    def _refused(self, exc: GatewayRefusedError) -> None:
        self.last_error = str(exc)
        self.state = "refused"
        if exc.unauthorized:
            log.error("Robot %s: the gateway refused the token: %s", self.robot_id, exc.message)
        else:
            log.warning("Robot %s: the gateway refused the connection: %s", self.robot_id, exc)

    def _unreachable(self, exc: TransportError) -> None:
        first = self.last_error is None
        self.last_error = str(exc)
        self.state = "unreachable"
        (log.warning if first else log.debug)("Robot %s: gateway unreachable: %s", self.robot_id, exc)

    def _lost(self, exc: ConnectionLostError) -> float | None:
        self.last_error = str(exc)
        code = exc.code
        if code == CLOSE_UNAUTHORIZED:
            log.error("Robot %s: the gateway refused the token: %s", self.robot_id, exc.reason)
        elif code == CLOSE_TOO_BIG:
            log.error("Robot %s: the gateway closed the connection, a frame was too big: %s (lower "
                      "batching.max_bytes)", self.robot_id, exc.reason)
        elif code == CLOSE_TOO_MANY:
            log.warning("Robot %s: too many connections: %s", self.robot_id, exc.reason)
        elif code in (CLOSE_GOING_AWAY, CLOSE_IDLE):
            log.info("Robot %s disconnected: %s", self.robot_id, exc.reason)
            return None
        else:
            log.warning("Robot %s disconnected: %s", self.robot_id, exc)
        return None

    async def _retry_later(self, hint_s: float | None) -> None:
        delay = self.backoff.next_delay(hint_s)
        self.state = "backing_off"
        log.debug("Robot %s: next attempt in %.2fs", self.robot_id, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    # -- RPC -------------------------------------------------------------------------------------

    def _spawn_rpc(self, conn: Connection, message: dict[str, Any]) -> None:
        self.counters.rpc_requests += 1
        task = asyncio.create_task(self._answer(conn, message))
        self._rpc_tasks.add(task)
        task.add_done_callback(self._rpc_tasks.discard)

    async def _answer(self, conn: Connection, request: dict[str, Any]) -> None:
        reply = await rpc_reply(self.rpc_handler, request)
        if reply is None:
            return
        with contextlib.suppress(ConnectionLostError):
            await conn.send_control(reply)

    # -- helpers ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-check whether everything is acked (after the spool dropped batches)."""
        if self.spool.pending_batches == 0:
            self._drained.set()
        else:
            self._drained.clear()

    def _emit(self, kind: str, **info: Any) -> None:
        if self.listener is not None:
            try:
                self.listener(kind, info)
            except Exception:
                log.exception("robot client listener failed on %s", kind)


async def rpc_reply(handler: RpcHandler | None, request: dict[str, Any]) -> dict[str, Any] | None:
    """The ``rpc_response`` to an ``rpc_request`` (None when the deadline passed first)."""
    correlation_id = request.get("correlation_id")
    method = str(request.get("method"))
    deadline = request.get("deadline")
    timeout = deadline - time.time() if isinstance(deadline, (int, float)) else None
    reply: dict[str, Any] = {"type": "rpc_response", "correlation_id": correlation_id}
    if handler is None:
        return {**reply, "status": "error",
                "error": {"code": "not_implemented", "message": "this robot answers no RPC"}}
    if timeout is not None and timeout <= 0:
        return None
    try:
        result = await asyncio.wait_for(handler(method, request.get("params")), timeout)
    except TimeoutError:
        return None
    except RpcError as exc:
        return {**reply, "status": "error", "error": {"code": exc.code, "message": exc.message}}
    except Exception as exc:
        log.exception("RPC %s (%s) failed", method, correlation_id)
        return {**reply, "status": "error",
                "error": {"code": "robot_error", "message": f"{type(exc).__name__}: {exc}"[:300]}}
    return {**reply, "status": "ok", "result": result}
