"""Real processor workers (``python -m robostream.processors`` subprocesses), producers and
readers of the derived topics, for the integration tests and the benchmark smoke test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from robostream.config import Settings
from robostream.processors import DerivedCodec
from robostream.schemas import ConfluentSchemaResolver, Envelope, encode_record
from robostream.schemas.registry import SchemaRegistryServer
from robostream.topics import topic_for
from tests.conftest import ROOT, TEST_STACK_ENV


class Registry:
    """A schema registry of our own (own storage topic), served from a background thread."""

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server = SchemaRegistryServer(settings, topic=f"_schemas_pr_{uuid.uuid4().hex[:8]}")
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(90)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment giving a subprocess exactly these settings (the parts the tests change)."""
    p = settings.processors
    metrics = {} if p.metrics_port is None else {"ROBOSTREAM_PROCESSORS__METRICS_PORT": str(p.metrics_port)}
    return {
        **os.environ, **TEST_STACK_ENV, **metrics,
        "ROBOSTREAM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "ROBOSTREAM_TOPICS__PREFIX": settings.topics.prefix,
        "ROBOSTREAM_TOPICS__PARTITIONS": str(settings.topics.partitions),
        "ROBOSTREAM_SCHEMA_REGISTRY__URL": settings.schema_registry.url,
        "ROBOSTREAM_PROCESSORS__APP_ID": p.app_id,
        "ROBOSTREAM_PROCESSORS__IDLE_S": str(p.idle_s),
        "ROBOSTREAM_PROCESSORS__STATUS_INTERVAL_S": str(p.status_interval_s),
        "ROBOSTREAM_PROCESSORS__SESSION_TIMEOUT_S": str(p.session_timeout_s),
        "ROBOSTREAM_PROCESSORS__BATCH_WITHIN_S": str(p.batch_within_s),
        "ROBOSTREAM_PROCESSORS__SEGMENT_GAP_S": str(p.segment_gap_s),
        "ROBOSTREAM_PROCESSORS__BUCKETED_OUTPUT": str(p.bucketed_output).lower(),
        "PYTHONPATH": str(ROOT / "src"),
    }


class Worker:
    """One ``python -m robostream.processors`` worker with a status file and a log file.

    ``ROBOSTREAM_TEST_WORKER_LOGLEVEL=debug`` makes the workers log Faust's and aiokafka's fetches,
    seeks and rebalances (what a flaky rebalance test needs).
    """

    def __init__(self, settings: Settings, name: str, folder: Path) -> None:
        self.name = name
        self.status_file = folder / f"{name}.json"
        self.log_file = folder / f"{name}.log"
        self.status_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "robostream.processors", "--name", name,
                 "--status-file", str(self.status_file),
                 "--loglevel", os.environ.get("ROBOSTREAM_TEST_WORKER_LOGLEVEL", "info")],
                env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_file.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float = 90.0) -> dict[str, Any]:
        """Wait until ``check(status)`` holds; fail with the log tail if the worker died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
            status = self.status()
            if status and check(status):
                return status
            time.sleep(0.3)
        raise AssertionError(f"{self.name}: condition not met in {timeout}s; status {self.status()}\n"
                             f"{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (clean leave), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: a crash (no commit, no leave)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def produce(settings: Settings, envelopes: Iterable[Envelope]) -> int:
    """Encode envelopes as the gateway does and produce them to their raw topics."""
    resolver = ConfluentSchemaResolver(settings.schema_registry.url)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 5,
                         "enable.idempotence": True, "message.max.bytes": 16 << 20})
    count = 0
    for envelope in envelopes:
        record = encode_record(envelope, resolver, topic_prefix=settings.topics.prefix)
        producer.produce(topic_for(envelope.data_type, settings), record.value, key=record.key,
                         headers=record.headers)
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    return count


def read_topic(settings: Settings, topic: str, *, until: Callable[[list[Any]], bool],
               timeout: float = 90.0) -> list[Any]:
    """Decode every record of a derived topic from the start until ``until(records)`` holds."""
    codec = DerivedCodec(ConfluentSchemaResolver(settings.schema_registry.url))
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, "fetch.message.max.bytes": 16 << 20})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    records.append(codec.decode(message.value()))
            if until(records):
                return records
        raise AssertionError(f"{topic}: only {len(records)} record(s) after {timeout}s")
    finally:
        consumer.close()


def telemetry(robot: str, session: str, start_s: float, records: int, *, first_seq: int = 0,
              per_record: int = 10, hz: float = 100.0) -> list[Envelope]:
    """``records`` time_series envelopes of a deterministic signal (pose, joints, metrics, a channel)."""
    from robostream.schemas import build_envelope

    out = []
    period_us = round(1e6 / hz)
    for r in range(first_seq, first_seq + records):
        ks = range(r * per_record, (r + 1) * per_record)
        wave = [((k * 37) % 101) / 8.0 for k in ks]
        payload = {
            "t": [i * period_us for i in range(per_record)],
            "pose": {"position": {"x": wave, "y": [w / 2 for w in wave], "z": [0.5] * per_record},
                     "orientation": {"x": [0.0] * per_record, "y": [0.0] * per_record,
                                     "z": [0.0] * per_record, "w": [1.0] * per_record}},
            "joints": {"angle": [[w + j for j in range(7)] for w in wave]},
            "metrics": {"cpu_percent": [float(k % 100) for k in ks], "memory_mb": [512.0] * per_record,
                        "network_latency_ms": [float(k % 7) for k in ks]},
            "channels": {"gripper_width": [w / 100 for w in wave]}, "units": {"gripper_width": "m"},
        }
        out.append(build_envelope("time_series", payload, robot_id=robot, session_id=session, seq=r,
                                  timestamp=start_s + r * per_record * period_us / 1e6))
    return out


def camera_frames(robot: str, session: str, start_s: float, rgb: int, *, depth_frames: int = 0,
                  clouds: int = 0, camera: str = "front", size: tuple[int, int] = (320, 180),
                  fps: float = 30.0) -> list[Envelope]:
    """images envelopes: depth (16-bit PNG) and PLY clouds, then ``rgb`` JPEG frames at ``fps``."""
    from robostream.processors.compaction import depth, pointcloud, synthetic
    from robostream.schemas import build_envelope

    width, height = size
    out = []  # depth and point clouds first: they are in the hour the RGB frames then leave
    for j in range(depth_frames):
        payload = {"camera_id": "wrist", "kind": "depth", "width": width, "height": height,
                   "blob": {"format": "png",
                            "content": depth.encode_png16(synthetic.depth_frame(j, width, height), 1)}}
        out.append(build_envelope("images", payload, robot_id=robot, session_id=session,
                                  seq=rgb + j, timestamp=start_s + j * 0.1))
    for c in range(clouds):
        cloud = synthetic.depth_to_cloud(synthetic.depth_frame(c, width, height), step=2)
        payload = {"camera_id": "wrist", "kind": "pointcloud", "width": len(cloud), "height": 1,
                   "blob": {"format": "ply", "content": pointcloud.encode_ply(cloud)}}
        out.append(build_envelope("images", payload, robot_id=robot, session_id=session,
                                  seq=rgb + depth_frames + c, timestamp=start_s + c * 0.1))
    for i in range(rgb):
        payload = {"camera_id": camera, "kind": "rgb", "width": width, "height": height,
                   "blob": {"format": "jpeg",
                            "content": synthetic.jpeg_bytes(synthetic.rgb_frame(i, width, height))}}
        out.append(build_envelope("images", payload, robot_id=robot, session_id=session, seq=i,
                                  timestamp=start_s + i / fps))
    return out
