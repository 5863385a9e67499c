"""A worker killed mid-window: after the restart the emitted aggregates equal an uninterrupted run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robostream.config import Settings
from robostream.processors import WindowStats
from robostream.processors.aggregations import SessionWindows
from robostream.processors.columns import TimeSeriesReader
from robostream.schemas import InMemorySchemaResolver, encode_record
from robostream.topics import stats_topic
from tests.integration.processors.harness import Worker, produce, read_topic, telemetry

BOUNDARY = 1_800_000_000 - 1_800_000_000 % 3600 + 3600
START = BOUNDARY - 20.0


def uninterrupted(settings: Settings, envelopes: list[Any]) -> dict[tuple[str, int], WindowStats]:
    """Every window of one uninterrupted pass over the same records (one batch, no restart)."""
    resolver = InMemorySchemaResolver()
    reader = TimeSeriesReader(resolver)
    columns = [reader.read(encode_record(e, resolver).value) for e in envelopes]
    session = SessionWindows("robot_001", "s1", int(settings.processors.allowed_lateness_s * 1e6))
    session.add(session.fresh(columns))
    closed = session.close_ready() + session.close_idle(1 << 62)
    return {(w.resolution.value, w.start): w.to_record() for w in closed}


def _values(window: WindowStats) -> list[tuple[Any, ...]]:
    return [(m.metric, m.count, m.min, m.max, m.mean, m.stddev, m.last, m.last_timestamp, m.unit)
            for m in window.metrics]


def emitted(settings: Settings, expected: dict[str, int]) -> dict[tuple[str, int], WindowStats]:
    """Windows on the stats topics; a window emitted twice (replay) must be identical."""
    out: dict[tuple[str, int], WindowStats] = {}
    for resolution, count in expected.items():
        records = read_topic(settings, stats_topic(resolution, settings),
                             until=lambda rs, n=count: len({r.window_start for r in rs}) >= n)
        for record in records:
            key = (resolution, record.window_start)
            if key in out:
                assert _values(out[key]) == _values(record), f"{key} emitted twice, differently"
            out[key] = record
    return out


def test_restart_mid_window_emits_the_same_aggregates_as_an_uninterrupted_run(
    make_settings: Callable[..., Settings], workers: Callable[[Settings, str], Worker],
) -> None:
    settings = make_settings()
    data = telemetry("robot_001", "s1", START, 300)  # 30 s at 100 Hz, across an hour boundary
    produce(settings, data[:155])  # up to 15.5 s: inside a 1 s, a 1 min and a 1 h window
    first = workers(settings, "before-crash")
    first.wait_for(lambda s: s["totals"].get("telemetry_records", 0) >= 155)
    first.kill()  # SIGKILL: no commit, no clean leave; the window state is in the changelog
    produce(settings, data[155:])
    second = workers(settings, "after-crash")
    # closed by event time (the last 1 s windows idle): 30 one-second windows, and the minute
    # and hour ending at the boundary (the ones after it end far in the future)
    expected = {"1s": 30, "1m": 1, "1h": 1}
    second.wait_for(lambda s: s["totals"].get("windows_out", 0) >= 1, timeout=90)
    after_restart = emitted(settings, expected)
    reference = uninterrupted(settings, data)
    assert after_restart.keys() <= reference.keys()
    assert sum(1 for r, _ in after_restart if r == "1s") == 30
    for key, window in after_restart.items():
        assert _values(window) == _values(reference[key]), key
    hour = after_restart[("1h", BOUNDARY * 1_000_000 - 3_600_000_000)]
    cpu = next(m for m in hour.metrics if m.metric == "metrics.cpu_percent")
    assert cpu.count == 2000  # 20 s x 100 Hz before the boundary: nothing lost, nothing twice
