"""Three robots streaming through the SDK (spool + resend) while a test injects faults.

Each robot sends ``time_series`` envelopes of 10 rows (10 messages) on a fixed event-time grid
(``seq / 10`` s after a recent whole minute: no record crosses a minute), optionally a small image every
``image_every`` envelopes. The acked seqs come from the SDK's ``batch_acked`` events.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from robostream.config import Settings
from robostream.schemas.examples import example_payload
from robostream_sdk import RobotClient
from tests.reliability.sizes import ROWS_PER_ENVELOPE
from tests.reliability.stack import ROBOTS, TOKENS


def minute_ago() -> float:
    """Start of the event-time grid: a whole minute, recent (MongoDB's TTL keeps 30 days)."""
    return float(int(time.time() // 60) * 60 - 60)


def telemetry(seq: int) -> dict[str, Any]:
    """Pose and two channels, 10 rows 10 ms apart; values derived from ``seq`` (checkable)."""
    n = ROWS_PER_ENVELOPE
    return {
        "t": [i * 10_000 for i in range(n)],
        "pose": {
            "position": {"x": [seq + i / 100 for i in range(n)], "y": [0.5] * n, "z": [0.4] * n},
            "orientation": {"x": [0.0] * n, "y": [0.0] * n, "z": [0.0] * n, "w": [1.0] * n},
        },
        "channels": {"gripper_width": [0.04] * n},
    }


@dataclass
class RobotRun:
    """What one robot sent and which of its envelopes the gateway acked."""

    robot_id: str
    session_id: str = ""
    sent_envelopes: int = 0
    acked_seqs: set[int] = field(default_factory=set)
    acked_images: set[int] = field(default_factory=set)  # seqs of images acked
    image_seqs: set[int] = field(default_factory=set)
    partly_retried: set[int] = field(default_factory=set)  # seqs of batches acked with retriable nacks
    #: seqs of every batch that had retriable nacks (kept: those envelopes were sent twice)
    resent_seqs: set[int] = field(default_factory=set)
    rejected: int = 0
    retried: int = 0
    counters: dict[str, int] = field(default_factory=dict)

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        if kind != "batch_acked":
            return
        entry = info["entry"]
        self.rejected += info["rejected"]
        self.retried += info["retried"]
        seqs = range(entry.first_seq, entry.last_seq + 1)
        if info["rejected"] or info["retried"]:
            # the event does not say which envelopes the gateway took: the nacked ones come back
            # in a later batch, the others count once the spool has emptied (settle_retried)
            self.partly_retried.update(seqs)
            if info["retried"]:
                self.resent_seqs.update(seqs)
            return
        self._acked(seqs)

    def _acked(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            (self.acked_images if seq in self.image_seqs else self.acked_seqs).add(seq)

    def settle_retried(self) -> None:
        """Once the SDK's spool is empty with nothing rejected or dropped, every envelope of a
        batch acked with retriable nacks was acked: in that batch, or resent and acked later."""
        if self.rejected == 0 and not self.counters.get("dropped"):
            self._acked(self.partly_retried)
            self.partly_retried.clear()


class Streamer:
    """Runs the robots on a background event loop; ``progress`` tells how far they got."""

    def __init__(self, settings: Settings, envelopes_per_robot: int, *, rate_per_robot: float,
                 image_every: int = 0) -> None:
        self.settings = settings
        self.per_robot = envelopes_per_robot
        self.rate = rate_per_robot
        self.image_every = image_every
        self.t0 = minute_ago()
        self.runs = [RobotRun(robot) for robot in ROBOTS]
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._main, name="reliability-robots", daemon=True)

    def start(self) -> Streamer:
        self._thread.start()
        return self

    @property
    def sent(self) -> int:
        return sum(run.sent_envelopes for run in self.runs)

    @property
    def acked(self) -> int:
        return sum(len(run.acked_seqs) + len(run.acked_images) for run in self.runs)

    @property
    def total(self) -> int:
        return self.per_robot * len(self.runs)

    def wait_sent(self, fraction: float, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while self.sent < fraction * self.total and not self.finished.is_set():
            assert time.monotonic() < deadline, f"robots stuck at {self.sent}/{self.total} envelopes"
            time.sleep(0.1)
        self._raise()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), (
            f"robots did not finish in {timeout_s:.0f} s: {self.acked}/{self.total} envelopes acked")
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise AssertionError(f"a robot failed: {self.error!r}") from self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._all())
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.finished.set()

    async def _all(self) -> None:
        await asyncio.gather(*(self._robot(run) for run in self.runs))

    async def _robot(self, run: RobotRun) -> None:
        client = RobotClient.from_settings(
            self.settings, run.robot_id, token=TOKENS[run.robot_id], listener=run.on_event,
            spool_dir=self.settings.batching.spool_dir, backoff_initial_s=0.1, backoff_max_s=1.0,
        )
        async with client:
            run.session_id = await client.start_session()
            started = time.monotonic()
            for seq_hint in range(self.per_robot):
                timestamp = self.t0 + seq_hint / 10
                if self.image_every and seq_hint % self.image_every == self.image_every - 1:
                    run.image_seqs.add(seq_hint)
                    seq = await client.send("images", example_payload("images"), timestamp=timestamp)
                else:
                    seq = await client.send("time_series", telemetry(seq_hint), timestamp=timestamp)
                assert seq == seq_hint, f"the SDK numbered {seq}, expected {seq_hint}"
                run.sent_envelopes += 1
                ahead = run.sent_envelopes / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            ok = await client.flush(timeout_s=240)
            assert ok, f"{run.robot_id}: the spool did not empty: {client.counters.snapshot()}"
            await client.end_session(timeout_s=60)
            run.counters = client.counters.snapshot()
            run.settle_retried()
