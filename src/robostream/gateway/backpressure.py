"""Bounded in-flight bytes: per connection and for the whole gateway.

A frame's bytes are *in flight* from the moment the gateway takes it until its ack is sent (all
its records have delivery reports). A connection that cannot take its next frame stops reading
its socket (TCP pushes back on the robot) and tells the robot with a ``slow_down`` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable


class ByteBudget:
    """Bytes in use under ``limit``; waiters are served first come, first served.

    A request larger than ``limit`` is granted only when nothing else is in use (so it cannot
    deadlock); the gateway's settings keep frames below every limit.
    """

    def __init__(self, limit: int, name: str = "budget") -> None:
        if limit <= 0:
            raise ValueError(f"{name}: limit must be > 0, got {limit}")
        self.limit = limit
        self.name = name
        self.used = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def free(self) -> int:
        return self.limit - self.used

    @property
    def waiting(self) -> int:
        """How many acquirers are queued."""
        return len(self._waiters)

    def _fits(self, nbytes: int) -> bool:
        return self.used + nbytes <= self.limit or self.used == 0

    def _take(self, nbytes: int) -> None:
        self.used += nbytes
        self.peak = max(self.peak, self.used)

    def try_acquire(self, nbytes: int) -> bool:
        """Take ``nbytes`` now if they fit and nobody is queued before us."""
        if self._waiters or not self._fits(nbytes):
            return False
        self._take(nbytes)
        return True

    async def acquire(self, nbytes: int) -> None:
        """Take ``nbytes``, waiting in line until they fit."""
        if self.try_acquire(nbytes):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(nbytes)  # granted while being cancelled: give it back
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._wake()
            raise

    def release(self, nbytes: int) -> None:
        """Give ``nbytes`` back and wake the waiters that now fit."""
        self.used -= nbytes
        if self.used < 0:
            raise RuntimeError(f"{self.name}: released more bytes than acquired")
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            nbytes, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if not self._fits(nbytes):
                return
            self._waiters.popleft()
            self._take(nbytes)
            future.set_result(None)


OnWait = Callable[[str, ByteBudget], Awaitable[None]]


class InflightGate:
    """One connection's budget chained to the gateway-wide one."""

    def __init__(self, connection: ByteBudget, total: ByteBudget) -> None:
        self.connection = connection
        self.total = total

    def try_acquire(self, nbytes: int) -> bool:
        """Take ``nbytes`` from both budgets now, or from neither."""
        if not self.connection.try_acquire(nbytes):
            return False
        if self.total.try_acquire(nbytes):
            return True
        self.connection.release(nbytes)
        return False

    async def acquire(self, nbytes: int, on_wait: OnWait | None = None) -> bool:
        """Take ``nbytes`` from both budgets; ``on_wait(scope, budget)`` runs once if we must wait.

        Returns True when the call had to wait (the caller was slowed down).
        """
        if self.try_acquire(nbytes):
            return False
        full = self.connection if self.connection.free < nbytes else self.total
        if on_wait is not None:
            await on_wait("connection" if full is self.connection else "gateway", full)
        await self.connection.acquire(nbytes)
        try:
            await self.total.acquire(nbytes)
        except BaseException:
            self.connection.release(nbytes)
            raise
        return True

    def release(self, nbytes: int) -> None:
        """Give ``nbytes`` back to both budgets."""
        self.total.release(nbytes)
        self.connection.release(nbytes)
