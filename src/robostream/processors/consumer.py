"""A Faust app whose consumer rewinds, after each rebalance, partitions that have no committed offset.

Why: during table recovery the aiokafka fetcher may already have fetched a stream partition
(moving its position to the end) before Faust pauses it; Faust then drops those records and, once
recovery is done, calls aiokafka's ``seek_to_committed``, which only seeks when the committed
offset is a positive number. A partition nobody has committed yet (a worker killed before its
first commit) was therefore left at its end: the restarted worker silently skipped every record.
Here such partitions are reset by ``consumer_auto_offset_reset`` instead, as Kafka would.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP

log = logging.getLogger("robostream.processors")


class _RewindingConsumerThread(AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[Any, int] = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        uncommitted = [tp for tp, offset in committed.items()
                       if (offset is None or offset <= 0) and tp.topic not in changelogs]
        if uncommitted:
            consumer = self._ensure_consumer()
            if self.app.conf.consumer_auto_offset_reset == "latest":
                await consumer.seek_to_end(*uncommitted)
            else:
                await consumer.seek_to_beginning(*uncommitted)
            log.debug("no committed offset: reset %s", ", ".join(f"{tp.topic}:{tp.partition}"
                                                                  for tp in uncommitted))
        return committed


class _RewindingConsumer(AIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _RewindingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _RewindingTransport(AIOKafkaTransport):
    Consumer = _RewindingConsumer


class RewindingApp(faust.App):
    """``faust.App`` on the aiokafka transport with the rewinding consumer (see the module docstring)."""

    def _new_transport(self) -> Any:
        return _RewindingTransport(self.conf.broker_consumer, self)
