"""The simulator's log through a real gateway: one "Batch sent" line per robot and second, summing
what was sent, and the seed's "Session complete" line at the end."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from pathlib import Path

import pytest

from robostream.config import Settings
from robostream.simulator import SimulationOptions, run_simulation

from .conftest import TOKENS, GatewayRunner

DURATION_S = 5.0
BATCH = re.compile(r"^Batch sent: ([\d,]+) messages \((\d+\.\d)KB\) \((robot_00\d)\)$")


def test_the_log_has_a_batch_line_per_second_and_the_session_line(
        sd_settings: Settings, gateway: GatewayRunner, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="robostream.simulator")
    options = SimulationOptions.from_settings(sd_settings, robots=2, duration_s=DURATION_S, media=False,
                                              gateway_url=gateway.url, spool_dir=tmp_path, tokens=TOKENS,
                                              progress=False)
    report = asyncio.run(run_simulation(options))

    records = [r for r in caplog.records if r.name == "robostream.simulator"]
    for robot in report.robots:
        assert robot.stats is not None and robot.stats.drained
        lines = [(r.created, BATCH.match(r.getMessage())) for r in records
                 if r.getMessage().startswith("Batch sent:") and f"({robot.robot_id}" in r.getMessage()]
        assert all(m is not None for _, m in lines), [r.getMessage() for r in records]
        # one a second (5 s of streaming; the last one when the session ends)
        assert DURATION_S - 1 <= len(lines) <= DURATION_S + 1, len(lines)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(lines[:-1])]  # the last: at the session's end
        assert all(0.8 <= g <= 1.3 for g in gaps), gaps
        sent = sum(int(m.group(1).replace(",", "")) for _, m in lines if m is not None)
        assert sent == robot.counters["sent"] == robot.stats.messages
        complete = [r.getMessage() for r in records if r.getMessage().startswith("Session complete:")
                    and f"({robot.robot_id}:" in r.getMessage()]
        assert len(complete) == 1
        seed_line = f"Session complete: {DURATION_S:.0f}s, {robot.stats.messages:,} messages sent ("
        assert complete[0].startswith(seed_line)
