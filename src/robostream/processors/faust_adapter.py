"""Every reach-in into Faust's, mode's and aiokafka's internals, behind one wall.

The processors need a few things faust-streaming offers no public API for:

* the group's committed offset per partition as the worker knows it (``Consumer._committed_offset``):
  where the offset-order guard resumes, what "caught up" and the consumer lag are measured from;
* the table's store read and written directly, each write sent to an explicit changelog partition
  (``Collection.data``, ``send_changelog``): a batch's session states, written after its outputs;
* whether a rebalance is under way (``App.rebalancing``) and this worker's active partitions
  (``PartitionAssignor.assigned_actives``);
* whether Faust fetches a partition (``Consumer._active_partitions``, ``_paused_partitions``,
  ``_buffered_partitions``), named when a partition stalls;
* a consumer that rewinds partitions nobody has committed yet after a rebalance (``App._new_transport``,
  ``Transport.Consumer``, ``Consumer._new_consumer_thread``, ``AIOKafkaConsumerThread.seek_to_committed``
  and ``_ensure_consumer``, ``TableManager.changelog_topics``): see :class:`RewindingApp`;
* the worker's progress spinner, dropped (``Worker.spinner``);
* the consumer's rack (``kafka.client_rack``): Faust passes no ``client_rack`` to aiokafka, so it is
  set on the consumer Faust builds (``AIOKafkaConsumerThread._create_worker_consumer``,
  ``aiokafka.AIOKafkaConsumer._client_rack``, read when the consumer starts its fetcher).

:func:`check_faust_internals` runs when the app is built and raises :class:`FaustInternalsError`,
naming the installed faust-streaming version, if any of them is gone: a silent fallback (say, no
committed offsets) would replay every partition from its start. Tested with faust-streaming 0.15.3,
mode-streaming 0.7.1 and aiokafka 0.14.0 (``pyproject.toml`` pins the faust-streaming range).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

import aiokafka
import faust
from faust.assignor.partition_assignor import PartitionAssignor
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.transport.consumer import Consumer as BaseConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP

from robostream.processors.worker import ProcessorStartError

log = logging.getLogger("robostream.processors")

#: The faust-streaming versions these reach-ins are tested with (as pinned in pyproject.toml).
TESTED_FAUST = ">=0.15.3,<0.16"


class FaustInternalsError(ProcessorStartError):
    """The installed faust-streaming lacks an internal the processors rely on; names it and the version."""


@dataclass(frozen=True)
class Internal:
    """One private attribute or method of a Faust/aiokafka class the processors use.

    ``in_init``: an instance attribute, checked as one that the class's ``__init__`` (or the method
    named ``assigned_in``) assigns.
    """

    owner: Any
    name: str
    in_init: bool = False
    assigned_in: str = "__init__"

    def present(self) -> bool:
        if self.in_init:
            init = getattr(self.owner, self.assigned_in, None)
            code = getattr(init, "__code__", None)
            return code is not None and self.name in code.co_names
        return hasattr(self.owner, self.name)

    def __str__(self) -> str:
        owner = getattr(self.owner, "__qualname__", repr(self.owner))
        return f"{getattr(self.owner, '__module__', '?')}.{owner}.{self.name}"


def internals() -> list[Internal]:
    """Everything this module reaches into (read from the classes as they are now imported)."""
    return [
        Internal(BaseConsumer, "_committed_offset", in_init=True),
        Internal(BaseConsumer, "_active_partitions", in_init=True, assigned_in="_reset_state"),
        Internal(BaseConsumer, "_paused_partitions", in_init=True, assigned_in="_reset_state"),
        Internal(BaseConsumer, "_buffered_partitions", in_init=True, assigned_in="_reset_state"),
        Internal(Collection, "data"),
        Internal(Collection, "send_changelog"),
        Internal(faust.App, "rebalancing"),
        Internal(PartitionAssignor, "assigned_actives"),
        Internal(faust.App, "_new_transport"),
        Internal(AIOKafkaTransport, "Consumer"),
        Internal(AIOKafkaConsumer, "_new_consumer_thread"),
        Internal(AIOKafkaConsumer, "_seek"),
        Internal(AIOKafkaConsumer, "_thread", in_init=True),
        Internal(AIOKafkaConsumerThread, "call_thread"),
        Internal(AIOKafkaConsumerThread, "seek"),
        Internal(AIOKafkaConsumerThread, "seek_to_committed"),
        Internal(AIOKafkaConsumerThread, "_ensure_consumer"),
        Internal(AIOKafkaConsumerThread, "_create_worker_consumer"),
        Internal(aiokafka.AIOKafkaConsumer, "_client_rack", in_init=True),
        Internal(TableManager, "changelog_topics"),
        Internal(faust.Worker, "spinner", in_init=True),
    ]


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def check_faust_internals(required: list[Internal] | None = None) -> None:
    """Raise :class:`FaustInternalsError` unless every internal in ``required`` (default: all) exists."""
    missing = [str(item) for item in (internals() if required is None else required) if not item.present()]
    if missing:
        raise FaustInternalsError(
            f"faust-streaming {_installed('faust-streaming')} (aiokafka {_installed('aiokafka')}) lacks "
            f"what the processors rely on: {', '.join(missing)}. They are tested with faust-streaming "
            f"{TESTED_FAUST}; install a version in that range (robostream/processors/faust_adapter.py)."
        )


# -- reading the app's state --


def committed_offsets(app: faust.App) -> Mapping[TP, int | None]:
    """The group's committed offset (the next offset to read) per partition, as this worker knows it."""
    offsets: Mapping[TP, int | None] = cast(Any, app.consumer)._committed_offset
    return offsets


def flow_state(app: faust.App, tp: TP) -> str:
    """Whether Faust fetches ``tp``: active (fetched), paused (recovery) and buffered (its stream's
    buffer was full, fetching stopped until it drains), as a short text for a log line."""
    consumer = cast(Any, app.consumer)
    active = consumer._active_partitions
    flags = {"active": active is not None and tp in active, "paused": tp in consumer._paused_partitions,
             "buffered": tp in consumer._buffered_partitions}
    return ", ".join(f"{name} {'yes' if flag else 'no'}" for name, flag in flags.items())


def rebalancing(app: faust.App) -> bool:
    """A rebalance is under way (the tables may be half recovered)."""
    return bool(app.rebalancing)


def assigned_actives(app: faust.App) -> set[TP]:
    """The partitions this worker actively consumes (not the standbys)."""
    return set(app.assignor.assigned_actives())


def drop_spinner(worker: faust.Worker) -> None:
    """No progress spinner (see :func:`robostream.processors.worker.faust_worker`)."""
    worker.spinner = None


class TableStore:
    """A Faust table as the telemetry processor uses it: its store read and written directly, each
    write sent to the changelog partition given (the source record's), values as bytes."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.table.data.get(key)
        return value

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    def list_keys(self) -> list[bytes]:
        return list(self.table.data.keys())


# -- the rewinding consumer --
#
# During table recovery the aiokafka fetcher may already have fetched a stream partition (moving its
# position to the end) before Faust pauses it; Faust then drops those records and, once recovery is
# done, calls aiokafka's ``AIOKafkaConsumer.seek_to_committed``, which seeks a partition only when
# its committed offset is a positive number (``if offset and offset > 0``): a partition whose
# committed offset is None (nobody committed yet, say a worker killed before its first commit) or 0
# keeps its fetch position. Upstream: https://github.com/aio-libs/aiokafka/issues/1003
# ("seek_to_committed does not work when committed offset is 0", filed 2024; the condition is
# unchanged in aiokafka 0.14.0). The restarted worker silently skipped every record of such
# partitions; here they are reset by ``consumer_auto_offset_reset`` instead, as Kafka would.


class _RewindingConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        rack = cast(RewindingApp, self.app).client_rack
        if rack:  # KIP-392: fetch from a replica in this rack (brokers with RackAwareReplicaSelector)
            consumer._client_rack = rack
        return consumer

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


# -- seeks on the consumer's thread --
#
# Faust runs aiokafka in a thread of its own (its own event loop), but ``Consumer.seek`` runs
# aiokafka's ``seek`` in the caller's thread. aiokafka's fetcher then deletes the partition's
# fetched records (``Fetcher.seek_to``: ``del self._records[tp]``) while ``fetched_records`` may be
# handing them out in the consumer thread, which deletes the same key afterwards: ``KeyError:
# TopicPartition`` crashes the Fetcher service and the worker with it (seen when the offset-order
# guard rewound a partition right after a worker started). The seek is enqueued on the consumer
# thread instead, so it runs between two fetches there.


class _RewindingConsumer(AIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _RewindingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _seek(self, partition: TP, offset: int) -> None:
        thread = self._thread

        async def seek() -> None:  # runs on the consumer thread's event loop
            thread.seek(partition, offset)

        await thread.call_thread(seek)


class _RewindingTransport(AIOKafkaTransport):
    Consumer = _RewindingConsumer


class RewindingApp(faust.App):
    """``faust.App`` on the aiokafka transport with the rewinding consumer (see the comment above);
    ``client_rack``: the rack its stream consumer tells the brokers (``kafka.client_rack``)."""

    client_rack: str | None = None

    def _new_transport(self) -> Any:
        return _RewindingTransport(self.conf.broker_consumer, self)
