"""The frame-encoding pool survives its processes dying: real spawned pools, real SIGKILLs."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from robostream.config import Settings
from robostream.processors.app import compaction_params
from robostream.processors.compaction import synthetic
from robostream.processors.compaction.pool import EncoderPool
from robostream.processors.frames import FrameCompactor
from robostream.processors.outputs import Outputs
from robostream.processors.records import DerivedCodec, FrameBatch
from robostream.processors.throughput import Throughput
from robostream.schemas import DataType, build_envelope, encode_record
from robostream.schemas.examples import example_payload
from robostream.schemas.resolver import InMemorySchemaResolver
from tests.unit.processors import crashing_encoder, pool_probe
from tests.unit.processors.crashing_encoder import HOLD, POISON


@dataclass
class _Message:
    value: bytes
    offset: int
    partition: int = 0
    topic: str = "robostream.images"
    key: bytes = b"robot_1/s1"
    headers: Any = None


@dataclass
class _Event:
    message: _Message


@dataclass
class _Kafka:
    """What the compactor produced: frame batches and dead letters, by topic."""

    records: dict[str, list[tuple[bytes, list[tuple[str, bytes]] | None]]] = field(default_factory=dict)

    async def send(self, topic: str, key: bytes, value: bytes,
                   headers: list[tuple[str, bytes]] | None) -> asyncio.Future[None]:
        self.records.setdefault(topic, []).append((value, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _depth_event(resolver: InMemorySchemaResolver, seq: int, camera: str) -> _Event:
    content = synthetic.depth_frame(seq, 64, 48).tobytes()
    payload = example_payload(DataType.IMAGES) | {
        "kind": "depth", "camera_id": camera, "width": 64, "height": 48,
        "blob": {"format": "raw16", "content": content, "size_bytes": len(content)},
    }
    envelope = build_envelope(DataType.IMAGES, payload, robot_id="robot_1", session_id="s1", seq=seq,
                              timestamp=1_764_000_000.0 + seq / 30)
    return _Event(_Message(encode_record(envelope, resolver).value, offset=seq))


def _test_pool(cues: Path, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=crashing_encoder.initializer, initargs=(os.getpid(), str(cues)))


class _Run:
    """A FrameCompactor on a real 2-process pool whose processes obey the cues in ``cues``."""

    def __init__(self, cues: Path) -> None:
        self.resolver = InMemorySchemaResolver()
        self.kafka = _Kafka()
        self.metrics = Throughput("test")
        self.acked: list[int] = []
        self.fed = 0
        self.pool = EncoderPool(2, partial(_test_pool, cues), lambda: self.metrics.add("pool_restarts"))
        self.outputs = Outputs(
            send=self.kafka.send, codec=DerivedCodec(self.resolver), bucketed_topic="bucketed",
            stats_topics={}, frames_topic="frames", dlq_topic="dlq", app_id="test",
            max_message_bytes=1_000_000,
        )
        self.compactor = FrameCompactor(
            resolver=self.resolver, outputs=self.outputs, metrics=self.metrics,
            params=compaction_params(Settings()), pool=self.pool, ack=self._ack, segment_frames=1,
            segment_gap_s=1.0, lateness_us=2_000_000, idle_s=5.0, max_inflight=4,
        )

    async def _ack(self, event: _Event) -> None:
        self.acked.append(event.message.offset)

    async def feed(self, cameras: list[str]) -> None:
        """One job per frame (each its own camera's batch); the n-th frame fed has seq n."""
        for camera in cameras:
            await self.compactor.process([_depth_event(self.resolver, self.fed, camera)])
            self.fed += 1

    def landed(self) -> list[int]:
        batches = [self.outputs.codec.decode(v) for v, _ in self.kafka.records.get("frames", [])]
        return sorted(f.seq for b in batches if isinstance(b, FrameBatch) for f in b.frames)

    def dead_letters(self) -> list[dict[str, str]]:
        return [{k.removeprefix("__connect.errors."): v.decode() for k, v in headers or []
                 if isinstance(v, bytes)} for _, headers in self.kafka.records.get("dlq", [])]


def _running(cues: Path) -> list[int]:
    return sorted(int(path.stem) for path in cues.glob("*.running"))


async def _first_running(cues: Path) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = _running(cues)
        if running:
            return running[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no pool process started the held job")


def _release(cues: Path) -> None:
    (cues / "release").touch()


def test_a_pool_process_killed_mid_encoding_loses_no_frame_and_the_pool_is_replaced(tmp_path: Path) -> None:
    run = _Run(tmp_path)
    first_pool = run.pool.pool

    async def scenario() -> None:
        await run.feed([HOLD, "front", "wrist", "rear"])
        os.kill(await _first_running(tmp_path), signal.SIGKILL)  # kill -9 while it encodes
        _release(tmp_path)
        await run.feed(["front", "wrist"])
        await run.compactor.drain()

    try:
        asyncio.run(scenario())
    finally:
        run.pool.shutdown()
    assert run.landed() == [0, 1, 2, 3, 4, 5]
    assert run.dead_letters() == []
    assert sorted(run.acked) == [0, 1, 2, 3, 4, 5]
    assert run.pool.pool is not first_pool and run.metrics.counters["pool_restarts"] == 1


def test_a_frame_that_kills_its_process_every_time_is_a_dead_letter_and_the_frames_after_it_land(
        tmp_path: Path) -> None:
    (tmp_path / "release").touch()
    run = _Run(tmp_path)

    async def scenario() -> None:
        await run.feed(["front", POISON, "wrist", "rear", "front", "wrist", "rear"])
        await run.compactor.drain()

    try:
        asyncio.run(scenario())
    finally:
        run.pool.shutdown()
    assert run.landed() == [0, 2, 3, 4, 5, 6]
    (dead,) = run.dead_letters()
    assert dead["offset"] == "1" and dead["exception.class.name"] == "EncoderCrashError"
    assert "died while encoding this job, twice" in dead["exception.message"]
    assert sorted(run.acked) == [0, 1, 2, 3, 4, 5, 6]
    assert run.metrics.counters["pool_restarts"] >= 1


def test_a_pool_process_loads_the_encoders_and_not_the_platform() -> None:
    from robostream.processors.compaction.pool import new_process_pool

    pool = new_process_pool(1)
    try:
        loaded = set(pool.submit(pool_probe.loaded_modules).result(timeout=120))
    finally:
        pool.shutdown()
    assert {"robostream.processors.compaction.jobs", "av", "DracoPy", "PIL.Image"} <= loaded
    # each start of a pool process (a new pool after a crash, every retry alone) pays for these
    assert not loaded & {"robostream.config", "robostream.processors.records", "robostream.schemas",
                         "robostream.topics", "fastavro", "pydantic"}
