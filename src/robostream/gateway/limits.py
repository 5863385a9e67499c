"""Connection limits: how many connections each robot may hold open at once."""

from __future__ import annotations

from collections import Counter


class ConnectionLimitError(Exception):
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
