"""Story helpers of the API tests: a simulated robot's data landed by the real sinks, and the API
running in a thread of its own (as a separate server would).

Nothing here writes a document or a Redis key by hand: :class:`Landing` hands records to the
real ``MongoSink``, ``RedisSink`` and ``S3Sink`` (as the sink worker does after consuming them),
so the API reads exactly the shapes the sinks write.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from robostream.api import ApiServer
from robostream.api.context import ApiContext
from robostream.config import Settings
from robostream.processors import WindowStats
from robostream.processors.aggregations import SessionWindows
from robostream.processors.columns import TelemetryColumns, columns_from_payload
from robostream.schemas import Envelope, build_envelope
from robostream.schemas.examples import example_payload
from robostream.simulator.robot import RobotModel, time_series_payload
from robostream.sinks import SessionEvent, SinkContext, SinkRecord
from robostream.sinks.mongo import MongoSink
from robostream.sinks.points import Telemetry
from robostream.sinks.redis import RedisSink
from robostream.sinks.s3 import S3Sink
from robostream.topics import StatsResolution
from robostream_sdk.session import CameraConfig, SessionConfig, session_event

STREAMS_100HZ = ("pose", "joints", "imu")


def now_us() -> int:
    return time.time_ns() // 1000


def jpeg(width: int, height: int, shade: int) -> bytes:
    """A real JPEG (a colour gradient) for pages that decode the images they get."""
    from PIL import Image

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.merge("RGB", (image.getchannel(0), Image.new("L", (width, height), shade),
                                image.getchannel(0).point(lambda v: 255 - v)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


class SimulatedRobot:
    """The simulator's robot model: realistic columnar time_series records, seq by seq."""

    def __init__(self, robot_id: str, session_id: str, start_us: int, *, seed: int = 0,
                 rate_hz: float = 100.0, samples: int = 10, streams: Sequence[str] = STREAMS_100HZ,
                 first_seq: int = 0) -> None:
        self.robot_id, self.session_id, self.start_us = robot_id, session_id, start_us
        self.model = RobotModel(seed)
        self.rate_hz, self.samples, self.streams = rate_hz, samples, tuple(streams)
        self.first_seq = first_seq
        self.count = 0

    def next_record(self) -> TelemetryColumns:
        """The next record: ``samples`` samples at ``rate_hz`` after the previous one."""
        times = (self.count * self.samples + np.arange(self.samples)) / self.rate_hz
        payload = time_series_payload(self.model, self.streams, times)
        stamp = self.start_us + round(times[0] * 1_000_000)
        columns = columns_from_payload(self.robot_id, self.session_id, self.first_seq + self.count,
                                       stamp, payload)
        self.count += 1
        return columns

    def records(self, count: int) -> list[TelemetryColumns]:
        return [self.next_record() for _ in range(count)]


def fail_on_report(record: SinkRecord, exc: BaseException) -> None:
    raise AssertionError(f"a sink rejected {record.topic}/{record.offset}: {exc}") from exc


class Landing:
    """Writes records with the real sinks (MongoDB, Redis, S3) of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        context = SinkContext("api-tests", 0, settings, fail_on_report)
        self.mongo, self.redis, self.s3 = MongoSink(settings), RedisSink(settings), S3Sink(settings)
        for sink in (self.mongo, self.redis, self.s3):
            sink.open(context)
        self._offsets = itertools.count()

    def _records(self, items: Iterable[Any], size: int = 200) -> list[SinkRecord]:
        return [SinkRecord("api-tests", 0, next(self._offsets), None, b"\0" * size, item=item)
                for item in items]

    def write(self, items: Iterable[Any], to: Sequence[str] = ("mongo", "redis")) -> None:
        records = self._records(items)
        for name in to:
            getattr(self, name).write(records)

    def session_start(self, robot_id: str, session_id: str, start_us: int,
                      cameras: Sequence[str] = ("front",)) -> None:
        config = SessionConfig(sensors=("pose", "joints", "imu"), rates_hz={"pose": 100.0},
                               cameras=tuple(CameraConfig(c, 640, 360, 30.0) for c in cameras))
        event = session_event(robot_id, session_id, "start", config=config, at=start_us / 1e6)
        self.write([SessionEvent(event)], to=("mongo",))

    def session_end(self, robot_id: str, session_id: str, end_us: int) -> None:
        event = session_event(robot_id, session_id, "end", at=end_us / 1e6)
        self.write([SessionEvent(event)], to=("mongo",))

    def telemetry(self, records: Sequence[TelemetryColumns], to: Sequence[str] = ("mongo", "redis"),
                  batch: int = 500) -> None:
        for start in range(0, len(records), batch):
            self.write([Telemetry.from_columns(c) for c in records[start:start + batch]], to=to)

    def stats(self, records: Sequence[TelemetryColumns],
              resolutions: Sequence[StatsResolution] = (StatsResolution.MINUTE, StatsResolution.HOUR),
              to: Sequence[str] = ("mongo", "redis")) -> list[WindowStats]:
        """Aggregate like the processors do (closing every window) and land the windows."""
        first = records[0]
        windows = SessionWindows(first.robot_id, first.session_id, 0, tuple(resolutions))
        windows.add(windows.fresh(list(records)))
        closed = [w.to_record() for w in windows.close_idle(1 << 62)]
        self.write(closed, to=to)
        return closed

    def image(self, robot_id: str, session_id: str, ts_us: int, *, seq: int, kind: str = "rgb",
              camera: str = "front", size: int = 2048, to: Sequence[str] = ("s3", "mongo", "redis"),
              content: bytes | None = None) -> Envelope:
        """One camera frame (validated like the gateway does), landed by the sinks in ``to``."""
        payload = example_payload("images")
        payload.update(kind=kind, camera_id=camera)
        fmt = {"rgb": "jpeg", "depth": "png", "pointcloud": "ply", "thumbnail": "jpeg"}[kind]
        blob = content if content is not None else bytes((seq * 31 + i) % 251 for i in range(size))
        payload["blob"] = {"format": fmt, "content": blob}
        envelope = build_envelope("images", payload, robot_id=robot_id, session_id=session_id, seq=seq,
                                  timestamp=ts_us / 1e6)
        self.write([envelope], to=to)
        return envelope

    def close(self) -> None:
        for sink in (self.mongo, self.redis, self.s3):
            sink.close()


class RunningApi:
    """The API server in a thread with its own event loop (port 0: a free port)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-under-test", daemon=True)
        self.server = ApiServer(settings, port=0)

    def __enter__(self) -> RunningApi:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    @property
    def context(self) -> ApiContext:
        return self.server.context
