"""Exponential backoff with jitter: the one retry policy of robostream.

The SDK reconnects with it (honouring the gateway's retry hints); the platform's retry loops (the
sink tasks' store outages, the schema registry's writes) use it too. It lives in the SDK because
the SDK depends on nothing of the platform, so the platform imports it from here.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial_s * factor**n`` capped at ``max_s``; a ``jitter`` share of each is random.

    ``jitter=0.5`` ("equal jitter") waits between half and all of the exponential delay, so robots
    that lost the gateway together do not come back together; ``jitter=1`` ("full jitter") waits
    anywhere up to it, ``jitter=0`` exactly it. A retry hint (``slow_down``, ``Retry-After``) is a
    floor: the delay is never shorter than the gateway asked.

    :meth:`next_delay` counts attempts (reset by :meth:`reset`); :meth:`delay` is the same policy
    for a caller that counts its own attempts.
    """

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, factor: float = 2.0,
                 jitter: float = 0.5, rng: random.Random | None = None) -> None:
        if not 0 < initial_s <= max_s or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("expected 0 < initial_s <= max_s, factor >= 1 and 0 <= jitter <= 1")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int | None = None) -> float:
        """The exponential delay of retry ``attempt`` (0: the first; default: the next), before jitter."""
        n = self.attempts if attempt is None else max(0, attempt)
        return min(self.max_s, self.initial_s * self.factor ** min(n, 64))

    def delay(self, attempt: int, hint_s: float | None = None) -> float:
        """The delay before retry ``attempt`` (0: the first), jittered, at least ``hint_s``."""
        base = self.ceiling(attempt)
        delay = base * (1 - self.jitter) + self._rng.uniform(0, base * self.jitter)
        return max(delay, hint_s or 0.0)

    def next_delay(self, hint_s: float | None = None) -> float:
        """The delay before the next attempt (and count the attempt)."""
        delay = self.delay(self.attempts, hint_s)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """The connection is healthy again: start from ``initial_s``."""
        self.attempts = 0
