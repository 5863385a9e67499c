"""Run N simulated robots at the seed's rates through the SDK, with progress and a summary.

Each robot is a :class:`SimulatedRobot` driving one :class:`~robostream_sdk.RobotClient`:
telemetry records as their samples exist, camera bursts rendered ahead in a worker thread and sent at their
frame times, a log line every ``log_every_s``, the other data types in turn every
``extras_every_s``, and RPC answers. Sample times come from schedules, so the rates hold whatever
the wake-up jitter; with a :class:`~robostream.simulator.schedule.VirtualClock` a run takes only
the time to compute it.

Log lines are the seed's: "Robot robot_001 connected", "Streaming started: 100Hz telemetry, 30Hz
sensors", "Batch sent: 100 messages (12.3KB)" (one per robot and second, summing the batch frames
sent in that second; every frame at DEBUG) and "Session complete: 300s, 30,000 messages sent". A
*message* is one reading: one time_series row or one envelope of another type (see
:mod:`robostream_sdk.counters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from robostream.schemas import DataType
from robostream.simulator.camera import CameraFrame, SceneCamera
from robostream.simulator.media import HEAVY_MEDIA, ROTATION, Extras
from robostream.simulator.options import RobotPlan, SimulationOptions
from robostream.simulator.robot import RobotModel
from robostream.simulator.rpc import RobotRpc
from robostream.simulator.schedule import BurstSchedule, Clock, RateSchedule, RealClock
from robostream.simulator.telemetry import STREAMS, Telemetry
from robostream_sdk import CameraConfig, Counters, RobotClient, SessionConfig, SessionStats
from robostream_sdk.session import EndReason

log = logging.getLogger("robostream.simulator")
BATCH_LOG_EVERY_S = 1.0
RENDER_LEAD_S = 3.0  # a camera renders its frames this long before their time
MAX_LAG_S = 3.0  # in real time, frames this late are skipped rather than sent
_NAP_S = 0.25  # longest sleep between checks of the stop flag
_THREADED = HEAVY_MEDIA | {DataType.ZIP, DataType.TAR}


class Sink(Protocol):
    """What a simulated robot needs from its client (a :class:`RobotClient`)."""

    counters: Counters

    async def start_session(self, config: SessionConfig | None = None, *,
                            session_id: str | None = None) -> str: ...

    async def send(self, data_type: DataType | str, payload: dict[str, Any],
                   timestamp: float | None = None) -> int: ...

    async def end_session(self, *, reason: EndReason = "completed",
                          timeout_s: float | None = 30.0) -> SessionStats: ...


@dataclass(slots=True)
class RobotReport:
    """What one robot did."""

    robot_id: str
    session_id: str
    duration_s: float
    counters: dict[str, int]
    stats: SessionStats | None
    rows: Counter[str] = field(default_factory=Counter)  # time_series rows per stream
    envelopes: Counter[str] = field(default_factory=Counter)  # per data type
    skipped_frames: int = 0  # camera frames not rendered in time (real time on a slow machine)


@dataclass(slots=True)
class SimulationReport:
    robots: list[RobotReport]
    wall_s: float

    def total(self, key: str) -> int:
        return sum(r.counters.get(key, 0) for r in self.robots)


class SimulatedRobot:
    """One robot: schedules, models and what it sends."""

    def __init__(self, plan: RobotPlan, options: SimulationOptions, sink: Sink, *, clock: Clock | None = None,
                 stop: asyncio.Event | None = None, camera_slots: tuple[int, int] = (0, 1),
                 batch_log: BatchLogger | None = None) -> None:
        self.plan = plan
        self.batch_log = batch_log  # its last second is logged before "Session complete"
        self.options = options
        self.sink = sink
        self.clock = clock or RealClock()
        self.stop = stop or asyncio.Event()
        self.camera_slots = camera_slots  # (first camera index of this robot, cameras in the run)
        self.model = RobotModel(plan.seed)
        self.extras = Extras(plan.robot_id, self.model, seed=plan.seed,
                             camera_id=plan.cameras[0] if plan.cameras else "front")
        self.rpc = RobotRpc(plan.robot_id, self.model, self.elapsed, self._status, cameras=plan.cameras)
        self.session_id = ""
        self.t0: float | None = None
        self.wall0 = 0.0
        self.rows: Counter[str] = Counter()
        self.envelopes: Counter[str] = Counter()
        self.skipped_frames = 0
        self.done = False

    # -- what it streams -------------------------------------------------------------------------

    @property
    def rates_hz(self) -> dict[str, float]:
        rates = self.options.rates
        return {"pose": rates.pose_hz, "joints": rates.joints_hz, "imu": rates.imu_hz,
                "force_torque": rates.force_torque_hz, "metrics": rates.metrics_hz}

    @property
    def streams_camera(self) -> bool:
        rates = self.options.rates
        return (self.options.media and bool(self.plan.cameras) and rates.camera_fps > 0
                and rates.camera_burst_s > 0)

    def session_config(self) -> SessionConfig:
        width, height = self.options.resolution
        rates = self.options.rates
        streams = ("rgb", "depth", "pointcloud")
        cameras = tuple(CameraConfig(c, width, height, rates.camera_fps, "jpeg", streams)
                        for c in self.plan.cameras) if self.streams_camera else ()
        kinds = [DataType.TIME_SERIES, DataType.LOG, *self._rotation()]
        if cameras:
            kinds.append(DataType.IMAGES)
        return SessionConfig(
            sensors=(*STREAMS, *(f"camera:{c.camera_id}" for c in cameras)),
            rates_hz={**self.rates_hz, **({"camera": rates.camera_fps} if cameras else {})},
            cameras=cameras, data_types=tuple(str(k) for k in kinds),
            extra={"simulator": "robostream", "seed": str(self.plan.seed),
                   "camera_burst": f"{rates.camera_burst_s:g}s every {rates.camera_burst_every_s:g}s"},
        )

    def _rotation(self) -> list[DataType]:
        return [k for k in ROTATION if self.options.media or k not in HEAVY_MEDIA]

    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else self.clock.now() - self.t0

    def _status(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "counters": self.sink.counters.snapshot()}

    # -- the run ---------------------------------------------------------------------------------

    async def run(self) -> RobotReport:
        """Start a session, stream for the duration (or until ``stop``), end the session."""
        rates = self.options.rates
        self.session_id = await self.sink.start_session(self.session_config())
        log.info("Streaming started: %gHz telemetry, %gHz sensors (%s, session %s)", rates.pose_hz,
                 rates.force_torque_hz, self.plan.robot_id, self.session_id)
        self.t0, self.wall0 = self.clock.now(), time.time()
        jobs: list[Coroutine[Any, Any, None]] = [self._telemetry(), self._extras()]
        if self.streams_camera:
            first = self.camera_slots[0]
            jobs += [self._camera(camera, first + i) for i, camera in enumerate(self.plan.cameras)]
        reason: EndReason = "completed"
        try:
            await asyncio.gather(*jobs)
        except Exception:
            log.exception("%s: the simulation failed", self.plan.robot_id)
            reason = "error"
        if self.stop.is_set():
            reason = "aborted"
        duration = self.elapsed()
        wait_s = 2.0 if self.stop.is_set() else self.options.end_timeout_s  # Ctrl-C: the spool keeps the rest
        stats = await self.sink.end_session(reason=reason, timeout_s=wait_s)
        if self.batch_log is not None:
            self.batch_log.flush()
        self.done = True
        counters = self.sink.counters.snapshot()
        log.info("Session complete: %.0fs, %s messages sent (%s: %s acked, %s spooled, %s lost)", duration,
                 f"{stats.messages:,}", self.plan.robot_id, f"{counters['acked']:,}",
                 f"{counters['spooled']:,}", f"{counters['lost']:,}")
        if self.skipped_frames:
            log.warning("%s: %d camera frames were skipped (rendering slower than real time)",
                        self.plan.robot_id, self.skipped_frames)
        return RobotReport(self.plan.robot_id, self.session_id, duration, counters, stats, self.rows,
                           self.envelopes, self.skipped_frames)

    async def _until(self, session_t: float) -> bool:
        """Wait until session time ``session_t``; False once the run must stop."""
        assert self.t0 is not None
        moment = self.t0 + session_t
        while not self.stop.is_set() and self.clock.now() < moment:
            await self.clock.sleep_until(min(moment, self.clock.now() + _NAP_S))
        return not self.stop.is_set()

    async def _send(self, data_type: DataType, payload: dict[str, Any], session_t: float) -> None:
        await self.sink.send(data_type, payload, timestamp=self.wall0 + session_t)
        self.envelopes[str(data_type)] += 1

    async def _telemetry(self) -> None:
        sim = self.options.sim
        telemetry = Telemetry(self.model, self.rates_hz, samples_per_record=sim.samples_per_record,
                              max_span_s=sim.record_span_s)
        duration = self.options.duration_s
        now = 0.0
        while now < duration:
            now = min(telemetry.next_sample_at(), duration)  # wake when a sample exists
            stopping = not await self._until(now)
            until = self.elapsed() if stopping else now
            for record in telemetry.records(min(until, duration), final=stopping or now >= duration):
                for stream in record.streams:
                    self.rows[stream] += record.samples
                await self._send(DataType.TIME_SERIES, record.payload, record.start)
            if stopping:
                return

    async def _extras(self) -> None:
        sim, duration = self.options.sim, self.options.duration_s
        rotation = self._rotation()
        logs = [(t, DataType.LOG) for t in RateSchedule(1 / sim.log_every_s, 0.5).due(duration)]
        others = [(t, rotation[i % len(rotation)])
                  for i, t in enumerate(RateSchedule(1 / sim.extras_every_s, 1.0).due(duration))]
        for moment, data_type in sorted(logs + others, key=lambda e: e[0]):
            if not await self._until(moment):
                return
            if data_type in _THREADED:
                payload = await asyncio.to_thread(self.extras.payload, data_type, moment)
            else:
                payload = self.extras.payload(data_type, moment)
            await self._send(data_type, payload, moment)

    def _burst_schedule(self, slot: int) -> BurstSchedule:
        rates = self.options.rates
        _, total = self.camera_slots
        first = min(3.0, rates.camera_burst_every_s / 2)
        phase = first + (slot % max(total, 1)) * rates.camera_burst_every_s / max(total, 1)
        return BurstSchedule(rates.camera_fps, rates.camera_burst_s, rates.camera_burst_every_s, 0.0, phase)

    async def _camera(self, camera_id: str, slot: int) -> None:
        """Render shortly ahead in a worker thread (bounded), send each frame at its time."""
        times = self._burst_schedule(slot).due(self.options.duration_s)
        if not times:
            return
        width, height = self.options.resolution
        sim = self.options.sim
        camera = await asyncio.to_thread(
            SceneCamera, camera_id, width, height, seed=self.plan.seed * 31 + slot,
            jpeg_quality=sim.jpeg_quality, pointcloud_stride=sim.pointcloud_stride)
        lookahead = max(4, min(90, (48 * 1024 * 1024) // max(1, width * height * 2)))
        frames: asyncio.Queue[tuple[float, CameraFrame] | None] = asyncio.Queue(lookahead)
        renderer = asyncio.create_task(self._render_ahead(camera, times, frames))
        try:
            while (item := await frames.get()) is not None:
                moment, frame = item
                if not await self._until(moment):
                    return
                await self._send_frame(camera_id, frame, moment)
        finally:
            renderer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renderer

    async def _render_ahead(self, camera: SceneCamera, times: list[float],
                            out: asyncio.Queue[tuple[float, CameraFrame] | None]) -> None:
        """Render each frame from ``RENDER_LEAD_S`` before its time (staggered bursts then rarely
        render at once); in real time, skip frames already ``MAX_LAG_S`` late (a slow machine)."""
        real_time = isinstance(self.clock, RealClock)
        for moment in times:
            if not await self._until(moment - RENDER_LEAD_S):
                break
            if real_time and self.elapsed() - moment > MAX_LAG_S:
                if not self.skipped_frames:
                    log.warning("%s: camera %s renders slower than real time; frames more than %gs late "
                                "are skipped", self.plan.robot_id, camera.camera_id, MAX_LAG_S)
                self.skipped_frames += 1
                continue
            camera.exposure_ms = self.rpc.exposure_ms.get(camera.camera_id, camera.exposure_ms)
            await out.put((moment, await asyncio.to_thread(camera.frame, moment)))
        await out.put(None)

    async def _send_frame(self, camera_id: str, frame: CameraFrame, moment: float) -> None:
        parts = (("rgb", "jpeg", frame.rgb_jpeg, frame.width, frame.height),
                 ("depth", "png", frame.depth_png, frame.width, frame.height),
                 ("pointcloud", "ply", frame.pointcloud_ply, frame.cloud_width, frame.cloud_height))
        for kind, fmt, content, width, height in parts:
            payload = {"camera_id": camera_id, "kind": kind, "width": width, "height": height,
                       "blob": {"format": fmt, "content": content}}
            await self._send(DataType.IMAGES, payload, moment)


class BatchLogger:
    """The seed's "Batch sent: N messages (X KB)" line: once per robot and second (of ``clock``),
    summing the batch frames sent in that second; each frame at DEBUG."""

    def __init__(self, robot_id: str, every_s: float = BATCH_LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.robot_id = robot_id
        self.every_s = every_s
        self.clock = clock
        self._since: float | None = None  # start of the second being summed
        self._messages = self._bytes = self._resent = 0

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if kind != "batch_sent":
            return
        entry, nbytes = info["entry"], info["bytes"]
        resent = entry.attempts > 1
        log.debug("  frame: %d messages (%.1fKB, %s, seqs %d..%d) (%s%s)", entry.messages, nbytes / 1024,
                  entry.fmt, entry.first_seq, entry.last_seq, self.robot_id, ", resent" if resent else "")
        now = self.clock()
        if self._since is None:
            self._since = now
        elif now - self._since >= self.every_s:
            self.flush()
            self._since += self.every_s * ((now - self._since) // self.every_s)  # seconds stay on one grid
        self._messages += entry.messages
        self._bytes += nbytes
        self._resent += entry.messages if resent else 0

    def flush(self) -> None:
        """Log what was sent since the last line (nothing when nothing was)."""
        if self._messages:
            resent = f", {self._resent:,} resent" if self._resent else ""
            log.info("Batch sent: %s messages (%.1fKB) (%s%s)", f"{self._messages:,}", self._bytes / 1024,
                     self.robot_id, resent)
        self._messages = self._bytes = self._resent = 0


def robots_for(options: SimulationOptions, *, stop: asyncio.Event,
               clock_factory: Callable[[], Clock] = RealClock,
               indexes: Collection[int] | None = None) -> list[tuple[SimulatedRobot, RobotClient]]:
    """One client and one simulated robot per planned robot (only those at ``indexes``, when given:
    the others run elsewhere, and every robot keeps the camera slots of the whole plan)."""
    pairs = []
    slot = 0
    for index, plan in enumerate(options.robots):
        if indexes is not None and index not in indexes:
            slot += len(plan.cameras)
            continue
        holder: list[SimulatedRobot] = []

        async def answer(method: str, params: Any, _holder: list[SimulatedRobot] = holder) -> Any:
            return await _holder[0].rpc(method, params)

        clock = clock_factory()
        batch_log = BatchLogger(plan.robot_id, clock=clock.now)
        client = RobotClient(options.gateway_url, plan.robot_id, token=plan.token, options=options.client,
                             rpc_handler=answer if options.sim.rpc else None, listener=batch_log)
        robot = SimulatedRobot(plan, options, client, clock=clock, stop=stop,
                               camera_slots=(slot, options.camera_count), batch_log=batch_log)
        holder.append(robot)
        slot += len(plan.cameras)
        pairs.append((robot, client))
    return pairs


async def run_simulation(options: SimulationOptions, *, stop: asyncio.Event | None = None,
                         clock_factory: Callable[[], Clock] = RealClock,
                         on_start: Callable[[list[SimulatedRobot]], Any] | None = None,
                         robot_indexes: Collection[int] | None = None) -> SimulationReport:
    """Run every robot (or those at ``robot_indexes`` of the plan) concurrently until the duration
    passed or ``stop`` is set."""
    stop = stop or asyncio.Event()
    pairs = robots_for(options, stop=stop, clock_factory=clock_factory, indexes=robot_indexes)
    started = time.monotonic()
    watcher = None
    try:
        for _, client in pairs:
            await client.start()
        if on_start is not None:
            watcher = on_start([robot for robot, _ in pairs])
        reports = await asyncio.gather(*(robot.run() for robot, _ in pairs))
    finally:
        if isinstance(watcher, asyncio.Task):
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for _, client in pairs:
            await client.close(timeout_s=2.0)
    return SimulationReport(list(reports), time.monotonic() - started)
