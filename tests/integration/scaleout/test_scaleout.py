"""Scale-out on the local stack: three processor workers (one Faust group) and three
``robostream sink run`` processes (one Kafka Connect group, ``connect-<name>``) share the six
partitions of ``time_series``. Mid-stream one of each is killed with SIGKILL; its partitions move
to the other two, and

* every point produced is in MongoDB exactly once (the Mongo sink's idempotent writes);
* every bucketed point and every closed window equals one uninterrupted single-worker pass over
  the same records, and what the killed worker emitted before dying and is replayed by its
  successor is emitted identically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from robostream.config import Settings
from robostream.processors import TelemetryBucket, WindowStats
from robostream.processors.aggregations import SessionWindows
from robostream.processors.bucketing import bucket_records
from robostream.processors.columns import TimeSeriesReader
from robostream.schemas import DataType, Envelope, InMemorySchemaResolver, encode_record
from robostream.sinks.task import group_id
from robostream.topics import bucketed_telemetry_topic, stats_topic, topic_for
from tests.integration.processors.harness import Worker, produce, read_topic, telemetry
from tests.integration.scaleout.conftest import PARTITIONS
from tests.integration.scaleout.helpers import SinkProcess, assignment, wait_until
from tests.integration.sinks.helpers import stored_samples

BOUNDARY = 1_800_000_000 - 1_800_000_000 % 3600 + 3600
START = BOUNDARY - 20.0  # 30 s of 100 Hz telemetry per session, across an hour boundary
SESSIONS = 12  # robot sessions, spread over the partitions by their key
RECORDS = 300  # per session, 10 points each
SLICES = 10  # the records arrive in slices: half before the kill, half after
#: Windows that close by event time (the last 1 s ones by idleness): 30 seconds, and the minute
#: and the hour that end at the boundary.
CLOSED = {"1s": 30, "1m": 1, "1h": 1}
#: Six Python processes start at once: on 2 busy shared cores that alone can take minutes.
START_TIMEOUT_S = 240

pytestmark = pytest.mark.timeout(600)

Point = tuple[str, int, int]  # session, seq, index
WindowKey = tuple[str, str, int]  # session, resolution, window start


@dataclass
class Scenario:
    settings: Settings
    data: dict[str, list[Envelope]]
    sinks: list[SinkProcess]
    processors: list[Worker]
    shares_before: dict[str, list[set[int]]] = field(default_factory=dict)
    shares_after: dict[str, list[set[int]]] = field(default_factory=dict)
    held_by_killed: dict[str, set[int]] = field(default_factory=dict)
    points_at_kill: int = 0

    @property
    def points(self) -> int:
        return SESSIONS * RECORDS * 10

    @property
    def connector(self) -> str:
        return self.settings.connectors[0].name


def _owned(status: dict[str, Any]) -> set[int]:
    return {int(tp.rsplit(":", 1)[1]) for tp in status.get("assigned", []) if ".time_series:" in tp}


def points_in_mongo(db: Any) -> int:
    """Samples stored (a sample has a document per channel group: count the fullest group)."""
    rows = list(db.telemetry.aggregate([{"$group": {"_id": "$group", "points": {"$sum": "$n"}}}]))
    return max((int(r["points"]) for r in rows), default=0)


@pytest.fixture(scope="module")
def scenario(scaleout_settings: Settings, mongo: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Start 3 + 3 workers, stream, SIGKILL one of each half-way, stream the rest."""
    settings = scaleout_settings
    folder = tmp_path_factory.mktemp("scaleout")
    db = mongo[settings.mongo.database]
    topic = topic_for(DataType.TIME_SERIES, settings)
    group = group_id(settings.connectors[0].name)
    data = {f"s{i}": telemetry("robot_001", f"s{i}", START, RECORDS) for i in range(SESSIONS)}
    run = Scenario(settings, data,
                   sinks=[SinkProcess(settings, f"sink-{i}", folder) for i in (1, 2, 3)],
                   processors=[Worker(settings, f"proc-{i}", folder) for i in (1, 2, 3)])
    everyone: list[SinkProcess | Worker] = [*run.sinks, *run.processors]
    killed = threading.Event()

    def alive() -> None:
        for sink in run.sinks:
            sink.alive()

    def stream() -> None:
        step = RECORDS // SLICES
        for n, start in enumerate(range(0, RECORDS, step)):
            if n == SLICES // 2:
                killed.wait(120)
            produce(settings, [e for records in data.values() for e in records[start:start + step]])
            time.sleep(0.3)

    try:
        run.shares_before["sinks"] = wait_until(
            lambda: sorted(assignment(settings.kafka.bootstrap, group, topic), key=min)
            if sorted(map(len, assignment(settings.kafka.bootstrap, group, topic))) == [2, 2, 2] else None,
            START_TIMEOUT_S, "three sink workers with two partitions each", alive)
        for worker in run.processors:
            worker.wait_for(lambda s: len(_owned(s)) == PARTITIONS // 3, timeout=START_TIMEOUT_S)
        run.shares_before["processors"] = wait_until(
            lambda: shares if len(set().union(*(shares := [_owned(w.status()) for w in run.processors])))
            == PARTITIONS else None, 60, "the processors' statuses to agree on the split")
        sink_victim, proc_victim = run.sinks[2], run.processors[2]
        run.held_by_killed["sinks"] = wait_until(  # the status refreshes a moment after a rebalance
            lambda: held if len(held := sink_victim.partitions(run.connector)) == 2 else None, 30,
            "the sink victim's two partitions in its status", alive)
        run.held_by_killed["processors"] = run.shares_before["processors"][2]

        feeder = threading.Thread(target=stream, daemon=True)
        feeder.start()
        wait_until(lambda: points_in_mongo(db) >= run.points // 20, 60, "the first points in MongoDB", alive)
        for worker in run.processors:  # each works on its own share
            worker.wait_for(lambda s: s["totals"].get("telemetry_records", 0) > 0, timeout=60)
        sink_victim.kill()  # SIGKILL: no flush, no commit, no leave
        proc_victim.kill()
        run.points_at_kill = points_in_mongo(db)
        killed.set()
        run.sinks, run.processors = run.sinks[:2], run.processors[:2]

        run.shares_after["sinks"] = wait_until(
            lambda: sorted(assignment(settings.kafka.bootstrap, group, topic), key=min)
            if sorted(map(len, assignment(settings.kafka.bootstrap, group, topic))) == [3, 3] else None,
            90, "the two surviving sink workers with three partitions each", alive)
        wait_until(lambda: set().union(*(s.partitions(run.connector) for s in run.sinks))
                   == set(range(PARTITIONS)), 20, "the survivors' status to show every partition", alive)
        for worker in run.processors:
            worker.wait_for(lambda s: len(_owned(s)) == PARTITIONS // 2, timeout=90)
        run.shares_after["processors"] = [_owned(w.status()) for w in run.processors]
        feeder.join(120)
        assert not feeder.is_alive(), "the feeder did not finish"
        yield run
    finally:
        for process in everyone:  # unique groups and topics: no clean leave needed
            process.kill()


def test_three_processors_and_three_sink_workers_share_the_partitions_and_take_over(
    scenario: Scenario,
) -> None:
    every = set(range(PARTITIONS))
    for kind in ("sinks", "processors"):
        before, after = scenario.shares_before[kind], scenario.shares_after[kind]
        assert sorted(map(len, before)) == [2, 2, 2] and set().union(*before) == every, kind
        assert sorted(map(len, after)) == [3, 3] and set().union(*after) == every, kind
        held = scenario.held_by_killed[kind]
        assert len(held) == 2 and held in before, kind


def test_every_point_is_in_mongodb_exactly_once_after_a_sink_worker_is_killed(
    scenario: Scenario, mongo: Any,
) -> None:
    db = mongo[scenario.settings.mongo.database]
    assert scenario.points_at_kill < scenario.points, "killed too late to test anything"
    wait_until(lambda: points_in_mongo(db) == scenario.points, 120, "every point in MongoDB")
    pairs = [(session, seq, i) for session in scenario.data for seq, i in stored_samples(db, session)]
    assert len(pairs) == len(set(pairs)) == scenario.points
    for session in scenario.data:
        assert sorted({seq for s, seq, _ in pairs if s == session}) == list(range(RECORDS))


def reference(settings: Settings, envelopes: dict[str, list[Envelope]],
              ) -> tuple[dict[Point, tuple[Any, ...]], dict[WindowKey, WindowStats]]:
    """Points and windows of one uninterrupted single-worker pass (one batch per session)."""
    resolver = InMemorySchemaResolver()
    reader = TimeSeriesReader(resolver)
    points: dict[Point, tuple[Any, ...]] = {}
    windows: dict[WindowKey, WindowStats] = {}
    for session, records in envelopes.items():
        columns = [reader.read(encode_record(e, resolver).value) for e in records]
        points.update(_points(bucket_records(columns)))
        state = SessionWindows("robot_001", session, int(settings.processors.allowed_lateness_s * 1e6))
        state.add(state.fresh(columns))
        for closed in state.close_ready() + state.close_idle(1 << 62):
            window = closed.to_record()
            windows[(session, window.resolution.value, window.window_start)] = window
    return points, windows


def _points(buckets: list[TelemetryBucket]) -> dict[Point, tuple[Any, ...]]:
    return {(b.session_id, p.seq, p.index): (p.timestamp, b.bucket_minute, b.bucket_hour,
                                             tuple(sorted(p.values.items())))
            for b in buckets for p in b.points()}


def _values(window: WindowStats) -> list[tuple[Any, ...]]:
    return [(m.metric, m.count, m.min, m.max, m.mean, m.stddev, m.last, m.last_timestamp, m.unit)
            for m in window.metrics]


def emitted_points(settings: Settings, expected: dict[Point, Any]) -> dict[Point, tuple[Any, ...]]:
    """Every point on the bucketed topic; a point emitted twice must be identical."""
    seen: list[TelemetryBucket] = []

    def complete(records: list[TelemetryBucket]) -> bool:
        seen[:] = records
        return len(_points(records)) >= len(expected)

    try:
        buckets = read_topic(settings, bucketed_telemetry_topic(settings), until=complete)
    except AssertionError as exc:
        missing = sorted(expected.keys() - _points(seen).keys())
        by_session: dict[str, set[int]] = {}
        for session, seq, _ in missing:
            by_session.setdefault(session, set()).add(seq)
        summary = {s: f"{len(q)} records, seq {min(q)}..{max(q)}" for s, q in sorted(by_session.items())}
        raise AssertionError(f"{exc}; {len(missing)} point(s) never emitted: {summary}") from None
    out: dict[Point, tuple[Any, ...]] = {}
    for bucket in buckets:
        for key, value in _points([bucket]).items():
            assert out.setdefault(key, value) == value, f"point {key} emitted twice, differently"
    return out


def emitted_windows(settings: Settings) -> dict[WindowKey, WindowStats]:
    """Every window on the stats topics; a window emitted twice must be identical."""
    out: dict[WindowKey, WindowStats] = {}
    for resolution, count in CLOSED.items():
        def complete(records: list[WindowStats], n: int = count * SESSIONS) -> bool:
            return len({(r.session_id, r.window_start) for r in records}) >= n

        records = read_topic(settings, stats_topic(resolution, settings), until=complete)
        for window in records:
            key = (window.session_id, resolution, window.window_start)
            if key in out:
                assert _values(out[key]) == _values(window), f"{key} emitted twice, differently"
            out[key] = window
    return out


def test_buckets_and_windows_equal_a_single_worker_after_a_processor_is_killed(scenario: Scenario) -> None:
    points, windows = reference(scenario.settings, scenario.data)
    assert len(points) == scenario.points
    assert emitted_points(scenario.settings, points) == points  # nothing lost, nothing changed
    emitted = emitted_windows(scenario.settings)
    assert emitted.keys() <= windows.keys()
    for resolution, count in CLOSED.items():
        assert sum(1 for _, r, _ in emitted if r == resolution) == count * SESSIONS, resolution
    for key, window in emitted.items():
        assert _values(window) == _values(windows[key]), key
    hour = next(w for (s, r, _), w in emitted.items() if s == "s0" and r == "1h")
    cpu = next(m for m in hour.metrics if m.metric == "metrics.cpu_percent")
    assert cpu.count == 2000  # 20 s x 100 Hz before the boundary: nothing lost, nothing twice
