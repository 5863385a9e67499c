"""A source partition whose committed offset stands still with records behind it is logged once,
with Faust's fetch state of it (a stall the reliability suite once saw after a restart)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from robostream.processors import app as processor_app
from robostream.processors.throughput import Throughput

STUCK, MOVING, DONE = TP("robot.time_series", 1), TP("robot.time_series", 0), TP("robot.time_series", 2)


def fake_processors() -> Any:
    consumer = SimpleNamespace(_active_partitions={MOVING, DONE}, _paused_partitions=set(),
                               _buffered_partitions={STUCK})
    return SimpleNamespace(app=SimpleNamespace(consumer=consumer, rebalancing=False), _stalls={},
                           metrics=Throughput("worker-1"))


def test_a_partition_that_stands_still_with_records_behind_is_named_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(processor_app, "STALL_WARN_S", 0.05)
    processors = fake_processors()
    ends = {STUCK: 3335, MOVING: 5000, DONE: 4436}

    async def three_status_ticks() -> None:
        for moving_offset in (4000, 4100, 4200):  # STUCK stays at 3005, MOVING advances
            committed = {STUCK: 3005, MOVING: moving_offset, DONE: 4436}
            processor_app.ProcessorApp._watch_stalls(processors, [STUCK, MOVING, DONE], committed, ends)
            await asyncio.sleep(0.06)

    with caplog.at_level(logging.WARNING, logger="robostream.processors"):
        asyncio.run(three_status_ticks())
    warnings = [r.getMessage() for r in caplog.records if "has not moved" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "robot.time_series:1 has not moved" in warnings[0] and "330 record(s) behind" in warnings[0]
    assert "committed 3005, end 3335" in warnings[0]
    assert "active no, paused no, buffered yes" in warnings[0]
    assert processors.metrics.counters["stalled_partitions"] == 1
    assert DONE not in processors._stalls  # caught up: not watched


def test_a_partition_that_moves_again_is_watched_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processor_app, "STALL_WARN_S", 3600.0)
    processors = fake_processors()

    async def ticks() -> None:
        processor_app.ProcessorApp._watch_stalls(processors, [STUCK], {STUCK: 3005}, {STUCK: 3335})
        first = processors._stalls[STUCK]
        processor_app.ProcessorApp._watch_stalls(processors, [STUCK], {STUCK: 3100}, {STUCK: 3335})
        assert processors._stalls[STUCK][0] == 3100 and processors._stalls[STUCK][1] >= first[1]
        assert processors._stalls[STUCK][2] is False

    asyncio.run(ticks())
