"""Batching by count, bytes and time: what closes a batch and what the frame holds."""

from __future__ import annotations

import msgpack
import pytest

from robostream_sdk.batcher import Batcher, array_header, frame_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def packed(seq: int, size: int = 10) -> bytes:
    data: bytes = msgpack.packb({"seq": seq, "pad": b"x" * size})
    return data


def test_a_batch_closes_at_max_messages() -> None:
    batcher = Batcher(max_messages=100, max_bytes=10**9, max_delay_s=60)
    closed = []
    for seq in range(25):
        closed += batcher.add(packed(seq), seq=seq, messages=10, session_id="s1")
    assert [b.messages for b in closed] == [100, 100]
    assert [(b.first_seq, b.last_seq, b.records) for b in closed] == [(0, 9, 10), (10, 19, 10)]
    assert batcher.messages == 50


def test_a_batch_closes_before_it_would_pass_max_bytes() -> None:
    batcher = Batcher(max_messages=10**6, max_bytes=1000, max_delay_s=60)
    closed = []
    for seq in range(10):
        closed += batcher.add(packed(seq, 300), seq=seq, messages=1, session_id="s1")
    assert closed and all(len(b.frame) <= 1000 for b in closed)
    assert [b.records for b in closed] == [3, 3, 3]


def test_an_envelope_larger_than_max_bytes_travels_alone() -> None:
    batcher = Batcher(max_messages=100, max_bytes=1000, max_delay_s=60)
    batcher.add(packed(0), seq=0, messages=1, session_id="s1")
    closed = batcher.add(packed(1, 5000), seq=1, messages=1, session_id="s1")
    assert [(b.first_seq, b.records) for b in closed] == [(0, 1), (1, 1)]
    assert batcher.take() == []


def test_a_batch_closes_after_max_delay() -> None:
    clock = FakeClock()
    batcher = Batcher(max_messages=100, max_bytes=10**6, max_delay_s=0.05, clock=clock)
    assert batcher.deadline is None
    batcher.add(packed(0), seq=0, messages=1, session_id="s1")
    assert batcher.deadline == pytest.approx(100.05)
    clock.now += 0.04
    assert batcher.take_due() == []
    clock.now += 0.02
    assert [b.records for b in batcher.take_due()] == [1]
    assert batcher.deadline is None


def test_a_new_session_starts_a_new_batch() -> None:
    batcher = Batcher(max_messages=100, max_bytes=10**6, max_delay_s=60)
    batcher.add(packed(0), seq=0, messages=1, session_id="s1")
    closed = batcher.add(packed(0), seq=0, messages=1, session_id="s2")
    assert [b.session_id for b in closed] == ["s1"]


def test_json_and_messagepack_envelopes_gather_in_their_own_batches() -> None:
    clock = FakeClock()
    batcher = Batcher(max_messages=3, max_bytes=10**6, max_delay_s=0.05, clock=clock)
    closed = []
    for seq, fmt in enumerate(["msgpack", "json", "msgpack", "msgpack", "json"]):
        closed += batcher.add(packed(seq), seq=seq, messages=1, session_id="s1", fmt=fmt)  # type: ignore[arg-type]
        clock.now += 0.01
    assert [(b.fmt, b.first_seq, b.last_seq, b.records) for b in closed] == [("msgpack", 0, 3, 3)]
    assert [e["seq"] for e in msgpack.unpackb(closed[0].frame)] == [0, 2, 3]
    assert batcher.messages == 2 and batcher.deadline == pytest.approx(100.06)  # the json batch's
    clock.now = 100.06
    assert [(b.fmt, b.first_seq, b.last_seq) for b in batcher.take_due()] == [("json", 1, 4)]
    batcher.add(packed(5), seq=5, messages=1, session_id="s1", fmt="json")
    batcher.add(packed(6), seq=6, messages=1, session_id="s1")
    assert [(b.fmt, b.first_seq) for b in batcher.take()] == [("json", 5), ("msgpack", 6)]


def test_a_new_session_closes_the_batches_of_both_formats() -> None:
    batcher = Batcher(max_messages=100, max_bytes=10**6, max_delay_s=60)
    batcher.add(packed(0), seq=0, messages=1, session_id="s1", fmt="json")
    batcher.add(packed(1), seq=1, messages=1, session_id="s1")
    closed = batcher.add(packed(0), seq=0, messages=1, session_id="s2", fmt="json")
    assert [(b.session_id, b.fmt) for b in closed] == [("s1", "json"), ("s1", "msgpack")]
    assert [(b.session_id, b.fmt) for b in batcher.take()] == [("s2", "json")]


@pytest.mark.parametrize("count", [0, 1, 15, 16, 65535, 65536])
def test_the_frame_is_a_messagepack_array_of_the_envelopes(count: int) -> None:
    parts = [msgpack.packb(i) for i in range(count)]
    assert msgpack.unpackb(frame_of(parts)) == list(range(count))
    assert msgpack.unpackb(array_header(count) + b"".join(parts)) == list(range(count))
