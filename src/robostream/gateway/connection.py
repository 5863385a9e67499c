"""What every robot connection does, whatever its transport.

A connection numbers the batch frames it reads (1, 2, 3 ...), takes their bytes from its
:class:`~robostream.gateway.backpressure.InflightGate` (waiting, and telling the robot
``slow_down``, when the budget is spent), hands them to the ingestor and queues the pending
batches; its ack loop answers them in order once Kafka has reported on every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from robostream.config import Settings
from robostream.gateway.auth import Identity
from robostream.gateway.backpressure import ByteBudget, InflightGate
from robostream.gateway.ingest import OVERSIZED_PREFIX_BYTES, BatchIngestor, PendingBatch
from robostream.gateway.metrics import GatewayMetrics
from robostream.gateway.protocol import FrameFormat, slow_down_frame

if TYPE_CHECKING:
    from robostream.gateway.app import Gateway

log = logging.getLogger(__name__)

#: Where the aiohttp application keeps its gateway.
GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway")

#: Exceptions that mean "the peer is gone" when sending.
PEER_GONE = (ConnectionError, RuntimeError, asyncio.CancelledError)


@dataclass(frozen=True, slots=True)
class Shared:
    """What the gateway lends every connection."""

    settings: Settings
    ingestor: BatchIngestor
    budget: ByteBudget
    metrics: GatewayMetrics


class Connection(ABC):
    """One robot connection: reads batch frames, sends nacks, acks and slow_down frames."""

    transport = "?"

    def __init__(self, shared: Shared, identity: Identity, fmt: FrameFormat) -> None:
        self.shared = shared
        self.identity = identity
        self.fmt = fmt
        gateway = shared.settings.gateway
        self.gate = InflightGate(ByteBudget(gateway.max_inflight_bytes_per_connection, "connection"),
                                 shared.budget)
        self.max_frame = gateway.max_frame_bytes
        self.batches = 0
        self.peer_gone = False
        self.draining = False
        self._queue: asyncio.Queue[PendingBatch | None] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._acker: asyncio.Task[None] | None = None
        self.reader: asyncio.Task[Any] | None = None
        self.interruptible = False  # True while the reader waits (for a frame or for budget)

    def stop_reading(self) -> None:
        """Graceful shutdown: read no more frames; a frame being ingested is finished first.

        A frame waiting for budget is dropped unacked (the robot sends it again).
        """
        self.draining = True
        if self.interruptible and self.reader is not None:
            self.reader.cancel()

    @property
    def source(self) -> str:
        """The ``__error.source`` of this connection's dead letters."""
        return f"gateway.{self.transport}"

    # -- sending ---------------------------------------------------------------------------------

    @abstractmethod
    async def _write(self, message: dict[str, Any]) -> None:
        """Put one message on the wire (called under the send lock)."""

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one message; False when the peer is gone."""
        if self.peer_gone:
            return False
        async with self._send_lock:
            try:
                await self._write(message)
            except PEER_GONE:
                self.peer_gone = True
                return False
        return True

    # -- batches ---------------------------------------------------------------------------------

    def start_acking(self) -> None:
        """Start the task that answers batches in order."""
        self._acker = asyncio.create_task(self._ack_loop(), name=f"{self.transport}-acks")

    async def finish_acking(self, grace_s: float | None = None) -> None:
        """No more batches: wait until every queued batch is answered (or ``grace_s`` passed)."""
        self._queue.put_nowait(None)
        if self._acker is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._acker), grace_s)
        except TimeoutError:
            log.warning("%s connection of %s: acks still pending after %.0fs",
                        self.transport, self.identity.robot_id, grace_s or 0)

    async def submit(self, data: bytes | str, fmt: FrameFormat) -> None:
        """Take one batch frame: account its bytes (maybe waiting), ingest it, queue its answer."""
        size = len(data)
        self.batches += 1
        received = time.perf_counter()
        metrics = self.shared.metrics
        metrics.frames.labels(self.transport, fmt).inc()
        metrics.received_bytes.labels(self.transport).inc(size)
        if size > self.max_frame:
            await self.submit_oversized(data[:OVERSIZED_PREFIX_BYTES], size, fmt, received)
            return
        self.interruptible = True
        try:
            await self.gate.acquire(size, self._slow_down)
        finally:
            self.interruptible = False
        self._update_gauge()
        try:
            pending = await self.shared.ingestor.ingest(
                data, fmt, identity=self.identity, source=self.source, batch=self.batches,
                nbytes=size, received_at=received,
            )
        except BaseException:
            self.gate.release(size)
            self._update_gauge()
            raise
        self._queue.put_nowait(pending)

    async def submit_oversized(self, prefix: bytes | str, size: int, fmt: FrameFormat,
                               received: float | None = None) -> None:
        """Nack a frame above ``max_frame_bytes`` (counted as a batch; nothing is held)."""
        if received is None:
            self.batches += 1
            received = time.perf_counter()
        pending = await self.shared.ingestor.reject_oversized(
            prefix, size, fmt, identity=self.identity, source=self.source, batch=self.batches,
            received_at=received,
        )
        self._queue.put_nowait(pending)

    async def _slow_down(self, scope: str, budget: ByteBudget) -> None:
        self.shared.metrics.slow_downs.labels(self.transport, scope).inc()
        retry = self.shared.settings.gateway.retry_after_ms
        await self.send(slow_down_frame(retry, budget.used, budget.limit, scope))

    async def _ack_loop(self) -> None:
        metrics = self.shared.metrics
        latency = metrics.ack_latency.labels(self.transport)
        while (pending := await self._queue.get()) is not None:
            await pending.tracker.done
            replies = pending.replies(metrics)
            if pending.nbytes:
                self.gate.release(pending.nbytes)
                self._update_gauge()
            for reply in replies:
                await self.send(reply)
            latency.observe(time.perf_counter() - pending.received_at)

    def _update_gauge(self) -> None:
        self.shared.metrics.inflight_bytes.set(self.shared.budget.used)

    async def close_quietly(self) -> None:
        """Stop the ack task without waiting (the peer is gone and nothing is queued)."""
        if self._acker is not None and not self._acker.done():
            self._acker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._acker
