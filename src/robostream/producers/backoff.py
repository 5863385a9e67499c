"""Exponential backoff with jitter for reconnects, honouring the gateway's retry hints."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial_s * factor**n`` capped at ``max_s``; a ``jitter`` share of each is random.

    ``jitter=0.5`` ("equal jitter") waits between half and all of the exponential delay, so robots
    that lost the gateway together do not come back together. A retry hint (``slow_down``,
    ``Retry-After``) is a floor: the delay is never shorter than the gateway asked.
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

    def ceiling(self) -> float:
        """The exponential delay of the next attempt, before jitter."""
        return min(self.max_s, self.initial_s * self.factor ** min(self.attempts, 64))

    def next_delay(self, hint_s: float | None = None) -> float:
        """The delay before the next attempt (and count the attempt)."""
        base = self.ceiling()
        self.attempts += 1
        delay = base * (1 - self.jitter) + self._rng.uniform(0, base * self.jitter)
        return max(delay, hint_s or 0.0)

    def reset(self) -> None:
        """The connection is healthy again: start from ``initial_s``."""
        self.attempts = 0
