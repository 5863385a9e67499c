"""The telemetry agent folds each partition strictly in offset order, whatever Faust re-delivers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from robostream.processors.ordering import OffsetOrder


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int


class Consumer:
    """Committed offsets, log starts and the rewinds the guard asked for."""

    def __init__(self, committed: dict[int, int] | None = None, log_start: int = 0) -> None:
        self.committed = committed or {}
        self.first = log_start
        self.rewinds: list[tuple[int, int]] = []

    async def start_offset(self, partition: int) -> int | None:
        return self.committed.get(partition, self.first)

    async def log_start(self, partition: int) -> int | None:
        return self.first

    async def rewind(self, partition: int, offset: int) -> None:
        self.rewinds.append((partition, offset))

    def order(self) -> OffsetOrder:
        return OffsetOrder(self.start_offset, self.log_start, self.rewind)


def recs(partition: int, offsets: range | list[int]) -> list[Rec]:
    return [Rec(partition, o) for o in offsets]


def sort(order: OffsetOrder, batch: list[Rec]) -> tuple[list[int], list[int]]:
    process, ack = asyncio.run(order.sort(batch))
    return [r.offset for r in process], [r.offset for r in ack]


def test_records_in_order_are_processed_and_acked() -> None:
    order = Consumer({0: 10}).order()
    assert sort(order, recs(0, range(10, 15))) == ([10, 11, 12, 13, 14], [10, 11, 12, 13, 14])


def test_records_ahead_of_the_committed_offset_wait_for_the_older_ones() -> None:
    consumer = Consumer({0: 490})
    order = consumer.order()
    # fetched before the seek back to the committed offset: neither folded nor acked
    assert sort(order, recs(0, range(500, 505))) == ([], [])
    assert consumer.rewinds == [(0, 490)]
    assert sort(order, recs(0, range(490, 505))) == (list(range(490, 505)), list(range(490, 505)))


def test_a_redelivered_record_is_acked_but_not_folded_again() -> None:
    order = Consumer().order()
    sort(order, recs(0, range(0, 10)))
    assert sort(order, recs(0, range(5, 13))) == ([10, 11, 12], list(range(5, 13)))
    assert order.redeliveries == 5


def test_a_hole_in_one_partition_does_not_hold_up_another() -> None:
    consumer = Consumer({0: 0, 1: 0})
    batch = [Rec(0, 0), Rec(1, 0), Rec(0, 2), Rec(1, 1), Rec(0, 3)]
    assert sort(consumer.order(), batch) == ([0, 0, 1], [0, 0, 1])
    assert consumer.rewinds == [(0, 1)]


def test_records_removed_by_retention_are_skipped_not_waited_for() -> None:
    consumer = Consumer({0: 100}, log_start=200)
    order = consumer.order()
    assert sort(order, recs(0, range(200, 203))) == ([200, 201, 202], [200, 201, 202])
    assert consumer.rewinds == []


def test_a_rebalance_starts_again_from_the_committed_offset() -> None:
    consumer = Consumer({0: 0})
    order = consumer.order()
    sort(order, recs(0, range(0, 50)))
    consumer.committed[0] = 20
    order.reset()
    assert sort(order, recs(0, range(20, 60))) == (list(range(20, 60)), list(range(20, 60)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 30)), max_size=60), st.integers(1, 10))
def test_whatever_the_delivery_order_each_partition_is_folded_once_in_order(
    deliveries: list[tuple[int, int]], batch_size: int,
) -> None:
    consumer = Consumer()
    order = consumer.order()
    folded: dict[int, list[int]] = {0: [], 1: []}
    stream = [Rec(p, o) for p, o in deliveries]
    # after the arbitrary deliveries, the consumer re-reads each partition from where it was rewound
    while stream:
        batch, stream = stream[:batch_size], stream[batch_size:]
        process, _ = asyncio.run(order.sort(batch))
        for rec in process:
            folded[rec.partition].append(rec.offset)
        for partition, offset in consumer.rewinds:
            stream += recs(partition, range(offset, offset + 3))
        consumer.rewinds.clear()
    for offsets in folded.values():
        assert offsets == list(range(len(offsets)))
