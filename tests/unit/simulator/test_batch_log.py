"""The simulator's "Batch sent" line: one per robot and second, summing that second's frames."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from robostream.simulator.runner import BatchLogger


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def frame(messages: int, attempts: int = 1) -> dict[str, object]:
    entry = SimpleNamespace(messages=messages, attempts=attempts, fmt="msgpack", first_seq=0, last_seq=0)
    return {"entry": entry, "bytes": messages * 512}


def batch_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.INFO and r.getMessage().startswith("Batch sent:")]


def test_one_line_per_second_sums_what_was_sent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="robostream.simulator")
    clock = FakeClock()
    logger = BatchLogger("robot_001", clock=clock)
    for _ in range(56):  # 3.5 s of a frame of 10 messages every 62.5 ms (exact in binary)
        logger("batch_sent", frame(10))
        clock.now += 0.0625
    logger("batch_acked", {})  # other events say nothing
    logger.flush()  # the session ends
    assert batch_lines(caplog) == ["Batch sent: 160 messages (80.0KB) (robot_001)"] * 3 + [
        "Batch sent: 80 messages (40.0KB) (robot_001)"]
    frames = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(frames) == 56 and frames[0].getMessage().startswith("  frame: 10 messages (5.0KB, msgpack")


def test_a_quiet_second_has_no_line_and_resends_are_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="robostream.simulator")
    clock = FakeClock()
    logger = BatchLogger("robot_002", clock=clock)
    logger("batch_sent", frame(1500))
    clock.now += 2.5  # nothing sent for 2.5 s (the gateway was down)
    logger("batch_sent", frame(40, attempts=2))
    logger.flush()
    logger.flush()  # nothing new: no line
    assert batch_lines(caplog) == ["Batch sent: 1,500 messages (750.0KB) (robot_002)",
                                   "Batch sent: 40 messages (20.0KB) (robot_002, 40 resent)"]
