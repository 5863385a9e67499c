"""Batching by count, bytes and time: what closes a batch and what the frame holds."""

from __future__ import annotations

import msgpack
import pytest

from robostream.producers.batcher import Batcher, array_header, frame_of


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
    assert batcher.take() is None


def test_a_batch_closes_after_max_delay() -> None:
    clock = FakeClock()
    batcher = Batcher(max_messages=100, max_bytes=10**6, max_delay_s=0.05, clock=clock)
    assert batcher.deadline is None
    batcher.add(packed(0), seq=0, messages=1, session_id="s1")
    assert batcher.deadline == pytest.approx(100.05)
    clock.now += 0.04
    assert batcher.take_due() is None
    clock.now += 0.02
    batch = batcher.take_due()
    assert batch is not None and batch.records == 1
    assert batcher.deadline is None


def test_a_new_session_starts_a_new_batch() -> None:
    batcher = Batcher(max_messages=100, max_bytes=10**6, max_delay_s=60)
    batcher.add(packed(0), seq=0, messages=1, session_id="s1")
    closed = batcher.add(packed(0), seq=0, messages=1, session_id="s2")
    assert [b.session_id for b in closed] == ["s1"]


@pytest.mark.parametrize("count", [0, 1, 15, 16, 65535, 65536])
def test_the_frame_is_a_messagepack_array_of_the_envelopes(count: int) -> None:
    parts = [msgpack.packb(i) for i in range(count)]
    assert msgpack.unpackb(frame_of(parts)) == list(range(count))
    assert msgpack.unpackb(array_header(count) + b"".join(parts)) == list(range(count))
