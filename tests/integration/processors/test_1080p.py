"""A short ``robostream simulate --resolution 1080p`` run through the real gateway and a processors
worker: its camera frames come out with the seed's three tiers, originals at 1920x1080, 640x360
previews and 120x68 thumbnails. The robot runs on a virtual clock: rendering a 1080p frame takes
~0.45 s of one core here, so in real time most burst frames would be skipped (see the README)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from robostream.config import RobotSettings, Settings
from robostream.gateway import hash_token
from robostream.processors import FrameBatch
from robostream.simulator import SimulationOptions, VirtualClock, run_simulation
from robostream.topics import frames_topic
from tests.integration.processors.harness import Worker, read_topic
from tests.integration.producers.conftest import GatewayRunner

TOKEN = "tok-hd-0001-abcdef"
FRAMES = 3  # per kind: a 1 s burst at 3 fps, 2 s into the run


def test_a_1080p_run_gives_originals_previews_and_thumbnails(
        make_settings: Callable[..., Settings], workers: Callable[[Settings, str], Worker],
        tmp_path: Path) -> None:
    base = make_settings("hd")
    settings = base.model_copy(update={
        "rates": base.rates.model_copy(update={"camera_fps": 3.0, "camera_burst_s": 1.0,
                                               "camera_burst_every_s": 4.0}),
        "robots": [RobotSettings(id="robot_001", token_sha256=hash_token(TOKEN), cameras=["front"])],
    })
    worker = workers(settings, "hd")
    gateway = GatewayRunner(settings)
    try:
        options = SimulationOptions.from_settings(
            settings, robots=1, duration_s=3.5, media=True, resolution="1080p", gateway_url=gateway.url,
            spool_dir=tmp_path / "spool", tokens={"robot_001": TOKEN}, progress=False)
        assert options.resolution == (1920, 1080)
        report = asyncio.run(run_simulation(options, clock_factory=VirtualClock))
    finally:
        gateway.close()
    (robot,) = report.robots
    assert robot.envelopes["images"] == 3 * FRAMES and robot.skipped_frames == 0
    assert robot.counters["acked"] == robot.counters["created"]

    def done(batches: list[FrameBatch]) -> bool:
        kinds = [f.frame_id for b in batches for f in b.frames]
        return sum("-rgb-" in k for k in kinds) >= FRAMES and sum("-depth-" in k for k in kinds) >= FRAMES

    batches = read_topic(settings, frames_topic(settings), until=done, timeout=120)
    worker.stop()
    frames = [f for b in batches for f in b.frames if "-rgb-" in f.frame_id or "-depth-" in f.frame_id]
    objects = {o.key: o.content for b in batches for o in b.objects}
    assert len(frames) == 2 * FRAMES
    for frame in frames:
        sizes = {t.tier: (t.width, t.height) for t in frame.tiers}
        tiers = {"original": (1920, 1080), "preview": (640, 360), "thumbnail": (120, 68)}
        assert sizes == tiers, frame.frame_id
        assert (frame.width, frame.height) == (1920, 1080)
        assert frame.thumbnail is not None  # inline: the Mongo sink keeps it in GridFS
        assert Image.open(io.BytesIO(frame.thumbnail)).size == (120, 68)
        original = frame.tier("original")
        assert original is not None and original.key in objects  # for the S3 sink (cold class)
        if original.format == "png":  # depth: the stored original decodes at full HD
            assert Image.open(io.BytesIO(objects[original.key])).size == (1920, 1080)
