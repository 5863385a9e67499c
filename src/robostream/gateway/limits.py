"""Per-robot limits: how many connections a robot may hold open, how many messages it may send.

Both are per robot id and shared by all of the robot's connections, WebSocket and HTTP.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robostream.errors import RobostreamError

if TYPE_CHECKING:
    from robostream.config import GatewaySettings


class ConnectionLimitError(RobostreamError):
    """A robot already holds its maximum of connections."""


class ConnectionRegistry:
    """Counts open connections per robot (``None``: unauthenticated connections with no robot id)."""

    def __init__(self, max_per_robot: int) -> None:
        self.max_per_robot = max_per_robot
        self._open: Counter[str | None] = Counter()

    def open(self, robot_id: str | None) -> None:
        """Count one more connection for ``robot_id``; raises :class:`ConnectionLimitError`."""
        if robot_id is not None and self._open[robot_id] >= self.max_per_robot:
            raise ConnectionLimitError(
                f"robot {robot_id} already has {self._open[robot_id]} open connections "
                f"(gateway.max_connections_per_robot = {self.max_per_robot})"
            )
        self._open[robot_id] += 1

    def close(self, robot_id: str | None) -> None:
        """One connection of ``robot_id`` ended."""
        self._open[robot_id] -= 1
        if self._open[robot_id] <= 0:
            del self._open[robot_id]

    def count(self, robot_id: str | None) -> int:
        return self._open[robot_id]

    @property
    def total(self) -> int:
        return sum(self._open.values())


# -- message rate per robot ------------------------------------------------------------------------


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; time comes from the caller.

    A take of more than ``burst`` tokens (a batch larger than the bucket) is granted when the bucket
    is full and leaves it in debt, so such a batch is slowed down, never refused for good.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def refill(self, now: float) -> float:
        """Tokens available at ``now`` (time going backwards adds nothing)."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        return self.tokens

    def wait_for(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens may be taken (0.0: now); takes nothing."""
        needed = min(n, self.burst)
        missing = needed - self.refill(now)
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens if possible: 0.0 when taken, else the seconds to wait (nothing taken)."""
        wait = self.wait_for(n, now)
        if wait == 0.0:
            self.tokens -= n
        return wait

    def full(self, now: float) -> bool:
        return self.refill(now) >= self.burst


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A batch refused by :class:`RateLimiter`: the robot over its limit and when to retry."""

    robot_id: str
    limit: float
    retry_after_s: float

    @property
    def retry_after_ms(self) -> int:
        return max(1, math.ceil(self.retry_after_s * 1000))

    @property
    def message(self) -> str:
        return (f"robot {self.robot_id} is over its rate limit of {self.limit:g} messages/s; "
                f"retry in {self.retry_after_ms} ms")


class RateLimiter:
    """One :class:`TokenBucket` per robot id, shared by all of its connections (WS and HTTP).

    ``clock`` (seconds, monotonic) is injectable for tests. Buckets that are full again are
    forgotten once more than ``max_buckets`` robots are tracked (they would start full anyway).
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: dict[str, TokenBucket] = {}

    @classmethod
    def from_settings(cls, gateway: GatewaySettings) -> RateLimiter | None:
        """The limiter of ``gateway.max_messages_per_s_per_robot`` (None: no limit)."""
        rate = gateway.max_messages_per_s_per_robot
        return None if rate is None else cls(rate, gateway.rate_burst_messages)

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, robot_id: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(robot_id)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._forget_full(now)
            bucket = self._buckets[robot_id] = TokenBucket(self.rate, self.burst, now)
        return bucket

    def _forget_full(self, now: float) -> None:
        for robot_id in [r for r, b in self._buckets.items() if b.full(now)]:
            del self._buckets[robot_id]

    def acquire(self, counts: Mapping[str, int]) -> RateLimited | None:
        """Take ``counts[robot]`` messages for every robot of a batch, all or nothing.

        None: taken. Else the first robot over its limit (nothing was taken for any robot).
        """
        now = self.clock()
        wanted = [(self._bucket(robot, now), robot, n) for robot, n in counts.items() if n > 0]
        for bucket, robot, n in wanted:
            wait = bucket.wait_for(n, now)
            if wait > 0:
                return RateLimited(robot, self.rate, wait)
        for bucket, _, n in wanted:
            bucket.take(n, now)
        return None
