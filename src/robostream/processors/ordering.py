"""Process each source partition strictly in offset order, whatever Faust re-delivers.

The telemetry state skips a record whose ``seq`` is not above its session's highest (SDK resends,
replays). That is exact only if every partition is processed in offset order with no hole. Around
rebalances Faust may hand the agent records out of that order: records fetched before a seek back
to the committed offset can arrive ahead of the re-fetched older ones (seen in the scale-out test:
the older records were then skipped as duplicates although nobody had processed them).

:class:`OffsetOrder` checks every record against the next offset expected for its partition:

* ``offset < expected``: a re-delivery of a record already processed: acked, not processed;
* ``offset == expected``: processed, then acked;
* ``offset > expected``: a hole: the record is left alone (neither processed nor acked, so the
  committed offset cannot pass it); unless the missing records arrive later in the batch, the
  partition is rewound to ``expected``. If retention removed the records from ``expected`` on, the
  partition's first offset becomes the expected one (logged). Source topics
  are neither compacted nor written transactionally, so their offsets have no other gaps.

After a rebalance the first expected offset is the group's committed offset (or, with nothing
committed, the partition's first offset).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

log = logging.getLogger("robostream.processors")

#: ``start_offset(partition)``: where processing of the partition resumes after an assignment
#: (committed offset, else log start); None: trust the first record.
StartOffset = Callable[[int], Awaitable[int | None]]
#: ``log_start(partition)``: the partition's first offset still on the broker (None: unknown).
LogStart = Callable[[int], Awaitable[int | None]]
#: ``rewind(partition, offset)``: make the consumer fetch the partition again from ``offset``.
Rewind = Callable[[int, int], Awaitable[None]]


class Positioned(Protocol):
    """A consumed record's position (Faust's ``Message`` has it)."""

    partition: int
    offset: int


M = TypeVar("M", bound=Positioned)


async def _unknown(partition: int) -> int | None:
    return None


async def _no_rewind(partition: int, offset: int) -> None:
    return None


class OffsetOrder:
    """Splits each batch into records to process and records to ack (see the module docstring)."""

    def __init__(self, start_offset: StartOffset = _unknown, log_start: LogStart = _unknown,
                 rewind: Rewind = _no_rewind) -> None:
        self._start_offset = start_offset
        self._log_start = log_start
        self._rewind = rewind
        self.expected: dict[int, int] = {}
        self.holes = 0
        self.redeliveries = 0

    def reset(self) -> None:
        """A rebalance: the consumer seeks to the committed offsets; start over from them."""
        self.expected.clear()

    async def sort(self, messages: Sequence[M]) -> tuple[list[M], list[M]]:
        """``(to_process, to_ack)``: ``to_process`` in offset order per partition, no holes."""
        process: list[M] = []
        ack: list[M] = []
        ahead: dict[int, int] = {}  # partition -> highest offset left alone (ahead of expected)
        for message in messages:
            partition, offset = message.partition, message.offset
            expected = self.expected.get(partition)
            if expected is None:
                expected = await self._start_offset(partition)
            if expected is not None and offset < expected:
                self.redeliveries += 1
                ack.append(message)
                continue
            if expected is not None and offset > expected:
                if partition not in ahead:  # once per batch: a broker round trip
                    expected = self.expected[partition] = await self._skip_expired(partition, expected)
                if offset > expected:
                    ahead[partition] = max(offset, ahead.get(partition, offset))
                    continue
            self.expected[partition] = offset + 1
            process.append(message)
            ack.append(message)
        for partition, offset in ahead.items():
            expected = self.expected[partition]
            if offset >= expected:  # not caught up within the batch: fetch again from the gap
                self.holes += 1
                log.info("partition %d: offset %d arrived before offset %d; fetching again from %d",
                         partition, offset, expected, expected)
                await self._rewind(partition, expected)
        return process, ack

    async def _skip_expired(self, partition: int, expected: int) -> int:
        """``expected``, or the partition's first offset if retention removed the records before it."""
        start = await self._log_start(partition)
        if start is None or start <= expected:
            return expected
        log.warning("partition %d: offsets %d..%d are gone (retention); going on from %d",
                    partition, expected, start - 1, start)
        return start
