"""A big frame is validated in slices: other connections' frames run meanwhile, and the result is
what :func:`decode_frame` gives for the whole frame."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from robostream.gateway import ingest
from robostream.gateway.ingest import BatchIngestor
from robostream.schemas import build_envelope, decode_frame, frame_items


def frame_of(count: int) -> bytes:
    envelopes = [build_envelope("log", {"level": "info", "logger": "t", "message": f"line {i}"},
                                robot_id="robot_001", session_id="s-1", seq=i, timestamp=1.0 + i).to_wire()
                 for i in range(count)]
    envelopes[3]["seq"] = -1  # one invalid envelope: reported, not fatal
    packed: bytes = msgpack.packb(envelopes, use_bin_type=True)
    return packed


async def test_a_big_frame_lets_the_event_loop_run_while_it_is_validated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "SLICE_S", 0.0)  # yield after every envelope
    frame = frame_of(50)
    ticks = 0

    async def other_connection() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_connection())
    await asyncio.sleep(0)
    items, json_mode = frame_items(frame, "msgpack")
    started = ticks
    parsed = await BatchIngestor._parse(ingest._Slicer(), items, json_mode)
    ticker.cancel()
    assert ticks - started >= 40  # the loop ran between envelopes
    whole = decode_frame(frame, "msgpack")
    assert parsed.envelopes == whole.envelopes and len(parsed.envelopes) == 49
    assert [e.to_dict() for e in parsed.errors] == [e.to_dict() for e in whole.errors]
