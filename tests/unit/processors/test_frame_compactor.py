"""The frame compactor's bookkeeping of what it has read (no encoding runs here)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from robostream.config import Settings
from robostream.processors.app import compaction_params
from robostream.processors.frames import FrameCompactor
from robostream.processors.throughput import Throughput
from robostream.schemas import DataType, build_envelope, encode_record
from robostream.schemas.examples import example_payload
from robostream.schemas.resolver import InMemorySchemaResolver


@dataclass
class _Message:
    value: bytes
    partition: int
    offset: int
    topic: str = "robostream.images"
    key: bytes = b"robot_1/s1"
    headers: Any = None


@dataclass
class _Event:
    message: _Message


def _image_event(resolver: InMemorySchemaResolver, offset: int, kind: str) -> _Event:
    payload = example_payload(DataType.IMAGES) | {"kind": kind, "camera_id": "front"}
    envelope = build_envelope(DataType.IMAGES, payload, robot_id="robot_1", session_id="s1", seq=offset,
                              timestamp=1_764_000_000.0 + offset / 30)
    return _Event(_Message(encode_record(envelope, resolver).value, partition=0, offset=offset))


def test_a_partition_ending_with_a_skipped_frame_is_caught_up_so_its_quiet_segment_is_flushed() -> None:
    """A thumbnail (acked at once, never encoded) as the last record of a partition: before the
    fix it did not count as read, the partition never looked caught up, and the open RGB segment
    before it was never flushed, so its frames were never acked and the group's lag stayed."""
    resolver = InMemorySchemaResolver()
    end_offsets = {0: 2}  # the partition holds offsets 0 (rgb) and 1 (thumbnail)
    acked: list[int] = []
    flushed: list[tuple[str, str, str]] = []

    async def ack(event: _Event) -> None:
        acked.append(event.message.offset)

    async def caught_up(partitions: set[int]) -> set[int]:
        return {p for p in partitions if compactor.processed.get(p, 0) >= end_offsets[p]}

    compactor = FrameCompactor(
        resolver=resolver, outputs=None, metrics=Throughput("test"),  # type: ignore[arg-type]
        params=compaction_params(Settings()), pool=None, ack=ack,  # type: ignore[arg-type]
        segment_frames=60, segment_gap_s=0.0, lateness_us=2_000_000, idle_s=5.0, max_inflight=1,
        caught_up=caught_up,
    )

    async def record_flush(camera: tuple[str, str, str]) -> None:
        flushed.append(camera)

    compactor._flush = record_flush  # type: ignore[method-assign]

    async def scenario() -> None:
        await compactor.process([_image_event(resolver, 0, "rgb"), _image_event(resolver, 1, "thumbnail")])
        await compactor.close_idle()

    asyncio.run(scenario())
    assert acked == [1]  # the thumbnail at once; the rgb frame waits for its segment
    assert compactor.processed == {0: 2}
    assert flushed == [("robot_1", "s1", "front")]
