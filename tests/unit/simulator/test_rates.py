"""The simulator keeps its rates (±5 %) over 10 s of virtual time, and its schedules do not drift."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from robostream.config import RateSettings, Settings, SimulatorSettings
from robostream.schemas import DataType, build_envelope
from robostream.simulator import SimulatedRobot, SimulationOptions, VirtualClock
from robostream.simulator.media import ROTATION
from robostream.simulator.robot import RobotModel
from robostream.simulator.schedule import BurstSchedule, RateSchedule
from robostream.simulator.telemetry import Telemetry
from robostream_sdk import Counters, SessionConfig, SessionStats, messages_in

DURATION_S = 10.0


class RecordingSink:
    """Stands in for the RobotClient: validates each envelope and keeps it."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.envelopes: list[tuple[str, float, dict[str, Any]]] = []
        self.config: SessionConfig | None = None

    async def start_session(self, config: SessionConfig | None = None, *,
                            session_id: str | None = None) -> str:
        self.config = config
        return "s-test"

    async def send(self, data_type: DataType | str, payload: dict[str, Any],
                   timestamp: float | None = None) -> int:
        seq = len(self.envelopes)
        build_envelope(data_type, payload, robot_id="robot_001", session_id="s-test", seq=seq,
                       timestamp=timestamp)
        self.envelopes.append((str(data_type), timestamp or 0.0, payload))
        self.counters.created += messages_in(data_type, payload)
        return seq

    async def end_session(self, *, reason: str = "completed", timeout_s: float | None = 30.0) -> SessionStats:
        return SessionStats("s-test", records=len(self.envelopes), reason=reason)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run() -> tuple[SimulatedRobot, RecordingSink]:
    import asyncio

    settings = Settings(
        rates=RateSettings(camera_burst_s=2.0, camera_burst_every_s=6.0, resolution="96x54"),
        simulator=SimulatorSettings(extras_every_s=0.5, log_every_s=1.0),
    )
    options = SimulationOptions.from_settings(settings, robots=1, duration_s=DURATION_S, progress=False)
    sink = RecordingSink()
    robot = SimulatedRobot(options.robots[0], options, sink, clock=VirtualClock())
    asyncio.run(robot.run())
    return robot, sink


@pytest.mark.parametrize(("stream", "rate_hz"), [("pose", 100), ("joints", 100), ("imu", 100),
                                                 ("force_torque", 30), ("metrics", 1)])
def test_telemetry_rates_hold_within_5_percent(run: tuple[SimulatedRobot, RecordingSink], stream: str,
                                               rate_hz: float) -> None:
    robot, sink = run
    rows = sum(len(p["t"]) for dt, _, p in sink.envelopes if dt == "time_series" and p.get(stream))
    assert rows == robot.rows[stream]
    assert abs(rows - rate_hz * DURATION_S) <= 0.05 * rate_hz * DURATION_S


def test_samples_are_evenly_spaced_in_time(run: tuple[SimulatedRobot, RecordingSink]) -> None:
    _, sink = run
    stamps = sorted(ts + t / 1e6 for dt, ts, p in sink.envelopes if dt == "time_series" and p.get("pose")
                    for t in p["t"])
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) == pytest.approx(0.01, abs=2e-6) and max(gaps) == pytest.approx(0.01, abs=2e-6)


def test_telemetry_travels_in_columnar_records(run: tuple[SimulatedRobot, RecordingSink]) -> None:
    _, sink = run
    pose_records = [p for dt, _, p in sink.envelopes if dt == "time_series" and p.get("pose")]
    assert sum(len(p["t"]) for p in pose_records) == 1000
    # 100 Hz rows, a record waits at most record_span_s (20 ms) for company: 3 rows each
    assert {len(p["t"]) for p in pose_records[:-1]} == {3}
    assert all(p.get("joints") and p.get("imu") for p in pose_records)  # same rate: same records


def test_a_sample_is_sent_when_it_exists_and_waits_for_company_at_most_the_record_span() -> None:
    rates = {"pose": 100.0, "joints": 100.0, "force_torque": 30.0, "metrics": 1.0}
    telemetry = Telemetry(RobotModel(0), rates, samples_per_record=10, max_span_s=0.02)
    waits: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    now = 0.0
    while now < 5.0:
        now = telemetry.next_sample_at()  # the simulator wakes exactly then
        for record in telemetry.records(now):
            newest = record.start + record.payload["t"][-1] / 1e6
            waits.setdefault(record.streams, []).append((now - record.start, now - newest))
    for streams, pairs in waits.items():
        assert max(newest for _, newest in pairs) < 1e-6, f"{streams}: a record waited for a timer"
        assert max(oldest for oldest, _ in pairs) <= 0.02 + 1e-6, f"{streams}: waited too long"
    assert max(oldest for oldest, _ in waits[("metrics",)]) < 1e-6  # 1 Hz: never waits for company
    assert max(oldest for oldest, _ in waits[("force_torque",)]) < 1e-6  # 33 ms apart > 20 ms span
    assert len(waits[("pose", "joints")]) == 167  # 500 rows of 100 Hz in records of 3


def test_camera_bursts_at_30_fps_with_rgb_depth_and_point_cloud(
        run: tuple[SimulatedRobot, RecordingSink]) -> None:
    _, sink = run
    images = [(ts, p["kind"], p["blob"]["format"]) for dt, ts, p in sink.envelopes if dt == "images"]
    kinds = Counter((kind, fmt) for _, kind, fmt in images)
    # bursts at 3 s and 9 s: 2 s at 30 fps, the second cut at 10 s
    assert kinds == {("rgb", "jpeg"): 90, ("depth", "png"): 90, ("pointcloud", "ply"): 90}
    frame_times = sorted({round(ts, 6) for ts, _, _ in images})
    assert frame_times[1] - frame_times[0] == pytest.approx(1 / 30, abs=1e-5)


def test_every_other_data_type_comes_now_and_then(run: tuple[SimulatedRobot, RecordingSink]) -> None:
    _, sink = run
    sent = Counter(dt for dt, _, _ in sink.envelopes)
    assert sent["log"] == 10
    assert {str(d) for d in ROTATION} <= set(sent)
    assert len(set(sent)) == 17  # every data type


def test_the_session_announces_its_streams(run: tuple[SimulatedRobot, RecordingSink]) -> None:
    _, sink = run
    assert sink.config is not None
    assert sink.config.rates_hz["pose"] == 100 and sink.config.cameras[0].width == 96
    assert "images" in sink.config.data_types


def test_rate_schedules_do_not_drift() -> None:
    schedule = RateSchedule(30.0, start=5.0)
    times: list[float] = []
    now = 5.0
    while now < 15.0:  # irregular wake-ups
        now += 0.037 if len(times) % 2 else 0.11
        times += schedule.due(min(now, 15.0))
    assert len(times) == 300 and times[-1] == pytest.approx(5.0 + 299 / 30)


def test_burst_schedule() -> None:
    schedule = BurstSchedule(fps=30, burst_s=2, every_s=30, start=0.0, phase_s=3.0)
    frames = schedule.due(60.0)
    assert len(frames) == 120 and frames[0] == 3.0 and frames[60] == 33.0
    assert schedule.due(61.0) == []


def test_robots_split_over_processes_keep_the_whole_plans_camera_slots() -> None:
    """``run_simulation(robot_indexes=...)`` runs part of a plan (the rest runs in another process):
    each robot's cameras keep the burst slots they have when the whole plan runs in one process."""
    import asyncio

    from robostream.simulator.runner import robots_for

    options = SimulationOptions.from_settings(Settings(), robots=5, duration_s=1.0, progress=False)

    def slots(indexes: list[int] | None) -> dict[str, tuple[int, int]]:
        pairs = robots_for(options, stop=asyncio.Event(), indexes=indexes)
        return {robot.plan.robot_id: robot.camera_slots for robot, _ in pairs}

    whole = slots(None)
    parts = [slots([0, 2, 4]), slots([1, 3])]
    assert [len(p) for p in parts] == [3, 2]
    assert {**parts[0], **parts[1]} == whole
    assert len({first for first, _ in whole.values()}) == 5  # distinct slots
