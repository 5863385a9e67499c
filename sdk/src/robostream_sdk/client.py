"""``RobotClient``: the robot-side SDK (asyncio; :mod:`.sync_client` has the blocking one).

    async with RobotClient("ws://127.0.0.1:8080", "robot_001", token=TOKEN) as client:
        await client.start_session(SessionConfig(sensors=("pose",), rates_hz={"pose": 100}))
        await client.send("time_series", {"t": [0], "pose": {...}})
        await client.end_session()           # flushes and waits for the acks

``send`` validates the envelope against the wire contract (raising ``ValidationError`` at once),
numbers it (``seq`` 0, 1, 2 ... per session) and batches it; every closed batch is written to the
disk spool first and sent from there, so nothing unacked is lost to a reconnect or a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from robostream_sdk.backoff import Backoff
from robostream_sdk.batcher import Batch, Batcher
from robostream_sdk.contract import DataType, build_envelope, validate_id
from robostream_sdk.counters import Counters, messages_in
from robostream_sdk.errors import SdkError
from robostream_sdk.packed import pack_time_series
from robostream_sdk.sender import Listener, RpcHandler, Sender
from robostream_sdk.session import (
    EndReason,
    SessionConfig,
    SessionStats,
    control_message,
    new_session_id,
    session_event,
)
from robostream_sdk.spool import Spool, SpoolEntry
from robostream_sdk.transport import Transport, TransportKind, endpoint_url, http_url
from robostream_sdk.transport.ws import WsTransport
from robostream_sdk.wire import FrameFormat, Framing, connection_format, frame_format, pack_envelope

log = logging.getLogger("robostream_sdk")


@dataclass(frozen=True)
class ClientOptions:
    """How a client batches, spools and connects (defaults: the ``batching`` section)."""

    transport: TransportKind = "ws"
    #: ``auto``: JSON text frames for metadata-like types (parameters, log, markdown, json, yaml,
    #: toml, csv), MessagePack binary frames for the rest, on one WebSocket (HTTPS streams carry one
    #: content type: MessagePack); ``msgpack`` or ``json`` force one format for every batch
    fmt: Framing = "auto"
    max_messages: int = 100
    max_bytes: int = 1024 * 1024
    max_delay_s: float = 0.05
    spool_dir: Path = Path(".robostream/spool")  # the robot's spool is <spool_dir>/<robot_id>
    spool_segment_bytes: int = 16 * 1024 * 1024
    spool_segment_age_s: float = 60.0
    spool_max_bytes: int = 1024 * 1024 * 1024
    fsync: bool = False  # fsync every spooled batch (survives power loss, costs a disk flush each)
    window_batches: int = 64  # unanswered batches on the wire at most
    window_bytes: int = 32 * 1024 * 1024
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    max_envelope_bytes: int = 16 * 1024 * 1024  # gateway.max_frame_bytes: larger envelopes are refused
    open_timeout_s: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    #: time_series columns go as packed little-endian float64/int64 bytes in MessagePack frames
    #: (the gateway copies them into Avro without touching each value); JSON frames keep lists
    pack_columns: bool = True

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> ClientOptions:
        """Options from ``batching`` (and ``gateway.max_frame_bytes``), then ``overrides``."""
        batching = settings.batching
        base = cls(max_messages=batching.max_messages, max_bytes=batching.max_bytes,
                   max_delay_s=batching.max_delay_ms / 1000, spool_dir=batching.spool_dir,
                   spool_segment_bytes=batching.spool_segment_bytes,
                   spool_segment_age_s=batching.spool_segment_age_s,
                   spool_max_bytes=batching.spool_max_bytes,
                   max_envelope_bytes=settings.gateway.max_frame_bytes)
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown client option(s): {', '.join(sorted(unknown))}")
        return replace(base, **overrides)


@dataclass(frozen=True)
class Prepared:
    """An envelope validated, numbered and packed, not yet batched (see :meth:`RobotClient.prepare`)."""

    seq: int
    packed: bytes
    messages: int
    data_type: str
    session: SessionStats
    fmt: FrameFormat = "msgpack"


def gateway_url_from(settings: Any) -> str:
    """The gateway's base URL from the ``gateway`` section (https when it has TLS)."""
    host = settings.gateway.host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # a client never binds
    return http_url(host, settings.gateway.port, settings.gateway.tls_cert is not None)


def make_transport(gateway_url: str, robot_id: str, token: str | None, options: ClientOptions) -> Transport:
    """The transport of ``options.transport`` with the robot's auth headers."""
    headers = {"X-Robot-Id": robot_id}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = endpoint_url(gateway_url, options.transport)
    if options.transport == "ws":
        return WsTransport(url, headers, framing=options.fmt, ssl_context=options.ssl_context,
                           open_timeout_s=options.open_timeout_s)
    try:
        from robostream_sdk.transport.https import HttpsTransport
    except ImportError as exc:  # aiohttp: the [https] extra
        raise SdkError(f"the HTTPS transport needs aiohttp ({exc}): pip install 'robostream-sdk[https]', "
                       "or use transport='ws'") from None
    return HttpsTransport(url, headers, fmt=connection_format(options.fmt), ssl_context=options.ssl_context,
                          open_timeout_s=options.open_timeout_s)


class RobotClient:
    """One robot's connection to the gateway: sessions, send, batching, spool, reconnects."""

    def __init__(self, gateway_url: str, robot_id: str, *, token: str | None = None,
                 options: ClientOptions | None = None, rpc_handler: RpcHandler | None = None,
                 listener: Listener | None = None, transport: Transport | None = None) -> None:
        self.robot_id = validate_id(robot_id, "robot_id")
        self.options = options or ClientOptions()
        self._packs = self.options.pack_columns and self.options.fmt != "json"
        self.gateway_url = gateway_url
        self.counters = Counters()
        self.transport = transport or make_transport(gateway_url, robot_id, token, self.options)
        self._rpc_handler = rpc_handler
        self._listener = listener
        self._batcher = Batcher(self.options.max_messages, self.options.max_bytes, self.options.max_delay_s)
        self._spool: Spool | None = None
        self._sender: Sender | None = None
        self._timer: asyncio.Task[None] | None = None
        self._opened: asyncio.Event | None = None
        self._session: SessionStats | None = None
        self._seq = 0
        self._events: list[dict[str, Any]] = []  # session events to repeat after a reconnect
        self._stats: dict[str, SessionStats] = {}

    @classmethod
    def from_settings(cls, settings: Any, robot_id: str, *, token: str | None = None,
                      gateway_url: str | None = None, rpc_handler: RpcHandler | None = None,
                      listener: Listener | None = None, **options: Any) -> RobotClient:
        """A client configured from ``config.yaml`` (``batching``, ``gateway``); ``options`` override."""
        return cls(gateway_url or gateway_url_from(settings), robot_id, token=token,
                   options=ClientOptions.from_settings(settings, **options), rpc_handler=rpc_handler,
                   listener=listener)

    # -- state -----------------------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        return self._session.session_id if self._session else None

    @property
    def connected(self) -> bool:
        return self._sender is not None and self._sender.connected

    @property
    def state(self) -> str:
        """idle, connecting, connected, backing_off, refused, unreachable or stopped."""
        return self._sender.state if self._sender else "idle"

    @property
    def last_error(self) -> str | None:
        return self._sender.last_error if self._sender else None

    @property
    def spool(self) -> Spool | None:
        return self._spool

    @property
    def spool_dir(self) -> Path:
        return Path(self.options.spool_dir) / self.robot_id

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (resending what a previous run left unacked) and start connecting."""
        if self._sender is not None:
            return
        options = self.options
        self._spool = Spool(self.spool_dir, segment_bytes=options.spool_segment_bytes,
                            segment_age_s=options.spool_segment_age_s, max_bytes=options.spool_max_bytes,
                            fsync=options.fsync, on_drop=self._on_drop)
        self.counters.spooled = self._spool.pending_messages
        self.counters.recovered = self._spool.pending_messages  # a previous run's, still to deliver
        self.counters.corrupt_batches = self._spool.corrupt_batches
        self._sender = Sender(
            self.robot_id, self.transport, self._spool, self.counters,
            backoff=Backoff(options.backoff_initial_s, options.backoff_max_s),
            window_batches=options.window_batches, window_bytes=options.window_bytes,
            listener=self._on_event, rpc_handler=self._rpc_handler, on_connect=lambda: list(self._events),
            on_idle=self._send_open_batch,
        )
        self._opened = asyncio.Event()
        self._sender.start()
        self._timer = asyncio.create_task(self._batch_timer(), name=f"robostream-batcher-{self.robot_id}")

    async def close(self, timeout_s: float = 10.0) -> bool:
        """Spool the open batch, wait up to ``timeout_s`` for acks, stop. True if all was acked."""
        if self._sender is None or self._spool is None:
            return True
        self._spool_open_batch()
        drained = await self._sender.wait_drained(timeout_s) if timeout_s > 0 else False
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self._sender.stop()
        self._spool.close()
        left = self._spool.pending_batches
        if left:
            log.info("Robot %s: %d unacked batches (%d messages) stay in the spool %s for the next run",
                     self.robot_id, left, self._spool.pending_messages, self.spool_dir)
        self._sender = None
        return drained

    async def __aenter__(self) -> RobotClient:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self.end_session(reason="completed" if exc is None else "aborted")
        await self.close()

    # -- sessions --------------------------------------------------------------------------------

    async def start_session(self, config: SessionConfig | Mapping[str, Any] | None = None, *,
                            session_id: str | None = None) -> str:
        """Start a recording session (ending the current one); seq starts at 0. Returns its id."""
        if self._session is not None:
            await self.end_session(reason="aborted")
        await self.start()
        sid = validate_id(session_id or new_session_id(), "session_id")
        event = session_event(self.robot_id, sid, "start", config=config)
        self._session = self._stats[sid] = SessionStats(sid)
        self._seq = 0
        self._events = [control_message(event)]
        await self._send_event(self._events[0])
        return sid

    async def end_session(self, *, reason: EndReason = "completed",
                          timeout_s: float | None = 30.0) -> SessionStats:
        """Flush, wait up to ``timeout_s`` for every ack, send the session end. Returns its stats."""
        stats = self._require_session()
        stats.drained = await self.flush(timeout_s)
        stats.ended_at = time.time()
        stats.reason = reason
        end = control_message(session_event(self.robot_id, stats.session_id, "end", stats=stats))
        self._events.append(end)
        await self._send_event(end)
        self._session = None
        self._stats.pop(stats.session_id, None)
        return stats

    async def _send_event(self, message: dict[str, Any]) -> None:
        sender = self._sender
        if sender is not None and sender.session_events:
            await sender.send_control(message)

    # -- data ------------------------------------------------------------------------------------

    async def send(self, data_type: DataType | str, payload: dict[str, Any],
                   timestamp: float | datetime | None = None) -> int:
        """Queue one envelope of the current session; returns its ``seq``.

        ``timestamp``: seconds since the epoch (``time.time()``) or an aware datetime; default now.
        Raises ``ValidationError`` (bad payload) or ``ValueError`` (envelope above the frame limit).
        """
        prepared = self.prepare(data_type, payload, timestamp)
        if self.enqueue(prepared):
            await asyncio.sleep(0)  # let the sender run, even when the caller sends in a tight loop
        return prepared.seq

    def prepare(self, data_type: DataType | str, payload: dict[str, Any],
                timestamp: float | datetime | None = None) -> Prepared:
        """The first half of :meth:`send`: validate, number and pack (no I/O, no shared state but ``seq``).

        Raises as :meth:`send`; a refused envelope takes no ``seq``.
        """
        stats = self._require_session()
        seq = self._seq
        if self._packs and data_type == DataType.TIME_SERIES:
            payload = pack_time_series(payload)
        envelope = build_envelope(data_type, payload, robot_id=self.robot_id, session_id=stats.session_id,
                                  seq=seq, timestamp=timestamp)
        packed = pack_envelope(envelope)
        data_type = envelope["data_type"]
        if len(packed) > self.options.max_envelope_bytes:
            raise ValueError(f"{data_type} envelope of {len(packed)} bytes exceeds the gateway's "
                             f"frame limit ({self.options.max_envelope_bytes} bytes)")
        self._seq += 1
        return Prepared(seq, packed, messages_in(data_type, payload), data_type, stats,
                        frame_format(data_type, self.options.fmt))

    def enqueue(self, prepared: Prepared) -> bool:
        """The second half of :meth:`send` (on the client's loop): count, batch, spool closed batches.

        True when a batch was spooled (the sender has work).
        """
        stats = prepared.session
        stats.records += 1
        stats.messages += prepared.messages
        stats.bytes += len(prepared.packed)
        stats.last_seq = prepared.seq
        stats.per_data_type[prepared.data_type] += 1
        self.counters.created += prepared.messages
        was_open = self._batcher.deadline is not None
        closed = self._batcher.add(prepared.packed, seq=prepared.seq, messages=prepared.messages,
                                   session_id=stats.session_id, fmt=prepared.fmt)
        for batch in closed:
            self._spool_batch(batch)
        spooled = bool(closed)
        if self._sender is not None and self._sender.idle and self._batcher.deadline is not None:
            # Ack-clocked: an idle link sends at once; a busy one coalesces until the acks return.
            self._spool_open_batch()
            spooled = True
        self.counters.batching = self._batcher.messages
        if not was_open and self._batcher.deadline is not None and self._opened is not None:
            self._opened.set()
        return spooled

    async def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Close the open batch and wait until every spooled batch is acked (False on timeout)."""
        self._spool_open_batch()
        if self._sender is None:
            return self._spool is None or self._spool.pending_batches == 0
        return await self._sender.wait_drained(timeout_s)

    # -- internals -------------------------------------------------------------------------------

    def _require_session(self) -> SessionStats:
        if self._session is None:
            raise RuntimeError("no session: call start_session() first")
        return self._session

    def _spool_open_batch(self) -> None:
        for batch in self._batcher.take():
            self._spool_batch(batch)
        self.counters.batching = self._batcher.messages

    def _spool_batch(self, batch: Batch) -> None:
        if self._spool is None or self._sender is None:
            raise RuntimeError("the client is closed")
        entry = self._spool.append(batch)
        if entry is None:
            self.counters.dropped += batch.messages
        else:
            self._sender.enqueue(entry)
        self.counters.spooled = self._spool.pending_messages
        self.counters.batching = self._batcher.messages

    async def _batch_timer(self) -> None:
        """Close batches at ``max_delay_s``; seal old spool segments now and then."""
        assert self._opened is not None
        maintained = time.monotonic()
        while True:
            deadline = self._batcher.deadline
            if deadline is None:
                self._opened.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._opened.wait(), 1.0)
            else:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                for batch in self._batcher.take_due():
                    self._spool_safely(batch)
            if self._spool is not None and time.monotonic() - maintained >= 1.0:
                maintained = time.monotonic()
                try:
                    self._spool.maintain()
                except OSError:
                    log.exception("Robot %s: spool maintenance failed", self.robot_id)

    def _send_open_batch(self) -> None:
        """The link went idle (its last ack arrived): what gathered meanwhile goes out now."""
        for batch in self._batcher.take():
            self._spool_safely(batch)

    def _spool_safely(self, batch: Batch) -> None:
        try:
            self._spool_batch(batch)
        except OSError:  # disk full or gone: the batch is lost, say so loudly
            log.exception("Robot %s: cannot spool a batch of %d messages", self.robot_id, batch.messages)
            self.counters.dropped += batch.messages
            self.counters.batching = self._batcher.messages

    def _on_drop(self, lost: list[SpoolEntry]) -> None:
        self.counters.dropped += sum(e.messages for e in lost)
        if self._spool is not None:
            self.counters.spooled = self._spool.pending_messages
        if self._sender is not None:
            self._sender.refresh()
        self._on_event("dropped", {"entries": lost})

    def _on_event(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "rejected":
            stats = self._stats.get(info["session_id"])
            if stats is not None:
                stats.rejected_records += info["records"]
        if self._listener is not None:
            self._listener(kind, info)
