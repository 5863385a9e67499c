"""The registry's storage: one compacted, single-partition Kafka topic, read into memory.

Reading: a background thread consumes the topic from the beginning (``read_committed``) and
hands each batch to the event loop, which applies it to the in-memory state. ``start()`` returns
only once the reader has reached the topic's end, so a restarted registry serves what was there.

Writing, and why two instances always agree on ids: every instance writes through a
*transactional* producer with the same ``transactional.id`` (derived from the topic name).
Kafka lets only the most recently initialised producer for a ``transactional.id`` commit; an
instance that wants to write first becomes that producer (``init_transactions`` fences the
others and aborts their open transaction), then reads the topic up to its last stable offset,
*then* decides (next id = max seen + 1, next version, or the id the same schema already has)
and commits. If another instance took over in between, the commit fails with a fencing error
and the whole decision is made again on fresh state. So at any moment at most one instance can
commit, and it decides on a view that contains every committed write: ids never collide, the
same schema gets the same id everywhere, and no two records ever claim the same
``(subject, version)``. (Id assignment is plain max+1, like Confluent: a permanently deleted
highest id can be reused after compaction drops its tombstone.)

After a commit the writer waits until its own reader has applied the records
(read-your-writes), so an answer is only sent once this instance's view includes the write.

A deleted topic (or one deleted and re-created empty, seen by its new topic id) is restored from
memory: the in-memory state holds every committed record, so the store re-creates the topic and
re-publishes that state (as the single writer, leaving out keys the new topic already has, so
another instance's newer writes win), checked every ``watch_interval_s`` and before each write.
Until the topic can be re-created, writes fail with a clear error; reads are served from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from robostream.schemas.registry.errors import RegistryError, operation_timeout, store_error
from robostream.schemas.registry.records import Key, Record, decode, encode
from robostream_sdk.backoff import Backoff

log = logging.getLogger(__name__)
kafka_log = logging.getLogger(f"{__name__}.librdkafka")

T = TypeVar("T")
#: Decides a write on the current state: the answer to return and the records to commit.
WritePlan = Callable[[], tuple[T, list[Record]]]

WRITE_ATTEMPTS = 8
#: between write attempts: full jitter up to 0.1 s, 0.2 s ... 2 s (instances that collided spread out)
WRITE_BACKOFF = Backoff(initial_s=0.1, max_s=2.0, jitter=1.0)
POLL_TIMEOUT_S = 0.1
TRANSACTION_TIMEOUT_MS = 10_000
#: how often the store checks that its topic still exists (and restores it if not)
WATCH_INTERVAL_S = 2.0
#: errors of a topic that was just created or whose leader is moving: try again shortly
TRANSIENT_CODES = frozenset({
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError._TIMED_OUT,
    KafkaError._NOENT,  # "no leaders found" for a brand-new partition
    KafkaError.UNKNOWN_LEADER_EPOCH,  # a brand-new partition's leader is still being elected
    KafkaError.FENCED_LEADER_EPOCH,
})


class KafkaStore:
    """Reads the schemas topic into ``on_record`` and commits writes as the single writer."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        on_record: Callable[[Record], None],
        *,
        client_id: str = "robostream-schema-registry",
        replication_factor: int = 1,
        topic_config: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        snapshot: Callable[[], list[Record]] = list,
        watch_interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._on_record = on_record
        self._client_id = client_id
        self._replication_factor = replication_factor
        self._topic_config = {**(topic_config or {}), "cleanup.policy": "compact"}
        self._timeout_s = timeout_s
        self._tp = TopicPartition(topic, 0)
        admin_config: dict[str, Any] = {
            "bootstrap.servers": bootstrap, "client.id": client_id, "logger": kafka_log,
        }
        self._admin = AdminClient(admin_config)
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="schema-registry-writer")
        self._write_lock = asyncio.Lock()
        self._producer: Producer | None = None
        self._stopping = threading.Event()
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._position = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._snapshot = snapshot  # records rebuilding the in-memory state (to restore the topic)
        self._watch_interval_s = watch_interval_s
        self._watcher: asyncio.Task[None] | None = None
        self._topic_id: str | None = None  # of the topic this instance reads
        self._generation = 0  # of the reader: one per topic incarnation
        self._seen: set[Key] = set()  # keys read from the current incarnation
        #: times the topic was found deleted and restored from memory
        self.restores = 0
        self._restore_error: str | None = None  # why the last restore failed (logged once)

    @property
    def transactional_id(self) -> str:
        """Shared by every registry instance on this topic: the single-writer fence."""
        return f"robostream-schema-registry.{self.topic}"

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the topic if needed, start the reader and read up to the end.

        Raises :class:`RuntimeError` naming the bootstrap servers if Kafka is unusable.
        """
        self._loop = asyncio.get_running_loop()
        try:
            await self._ensure_topic()
            self._topic_id = await self._created_topic_id()
            self._start_reader()
            await self.catch_up()
        except (KafkaException, RegistryError) as exc:
            await self.stop()
            reason = exc.args[0].str() if isinstance(exc, KafkaException) else exc.message
            raise RuntimeError(
                f"schema registry: cannot use topic {self.topic} on Kafka at {self._bootstrap}: "
                f"{reason}"
            ) from None
        log.info("schema registry store ready: topic %s read up to offset %d",
                 self.topic, self._position)
        self._watcher = asyncio.create_task(self._watch(), name=f"schema-registry-watch-{self.topic}")

    async def stop(self) -> None:
        """Stop the watcher and the reader thread and drop the producer."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._stop_reader()
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(store_error("The schema registry is shutting down"))
        self._waiters.clear()
        self._producer = None
        self._writer_pool.shutdown(wait=False)

    async def _ensure_topic(self) -> None:
        new = NewTopic(self.topic, 1, self._replication_factor, config=self._topic_config)
        future = self._admin.create_topics(
            [new], operation_timeout=self._timeout_s, request_timeout=self._timeout_s
        )[self.topic]
        try:
            await asyncio.wrap_future(future)
            log.info("created schemas topic %s (compacted, 1 partition)", self.topic)
            return
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        partitions = await self._partition_count()
        if partitions != 1:
            raise RuntimeError(
                f"schemas topic {self.topic} has {partitions} partitions; it must have exactly 1"
            )

    async def _partition_count(self) -> int:
        """Partitions of the existing topic (metadata of a brand-new topic may lag a moment)."""
        partitions = 0
        for _ in range(50):
            metadata = await asyncio.to_thread(self._admin.list_topics, self.topic,
                                               self._timeout_s)
            topic = metadata.topics.get(self.topic)
            partitions = 0 if topic is None or topic.error else len(topic.partitions)
            if partitions:
                break
            await asyncio.sleep(0.1)
        return partitions

    # --- reading ----------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        return Consumer({
            "bootstrap.servers": self._bootstrap,
            "client.id": self._client_id,
            "group.id": f"{self._client_id}-reader",  # never joined or committed: assign() only
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
        }, logger=kafka_log)

    def _start_reader(self) -> None:
        """Read the topic from its beginning in a new thread (a new generation: position 0)."""
        self._generation += 1
        self._position = 0
        self._seen = set()
        self._stopping = threading.Event()
        self._reader = threading.Thread(
            target=self._read_loop, args=(self._generation, self._stopping),
            name=f"schema-registry-reader-{self.topic}", daemon=True,
        )
        self._reader.start()

    async def _stop_reader(self) -> None:
        self._stopping.set()
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 10.0)
            self._reader = None

    def _read_loop(self, generation: int, stopping: threading.Event) -> None:
        consumer = self._consumer()
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        last = -1
        try:
            while not stopping.is_set():
                messages = consumer.consume(500, timeout=POLL_TIMEOUT_S)
                records, eof = self._decode_batch(messages)
                position = max(consumer.position([self._tp])[0].offset, eof)
                if records or position != last:
                    last = position
                    self._hand_over(records, position, generation)
        except Exception:
            log.exception("schema registry reader for %s stopped", self.topic)
        finally:
            consumer.close()

    def _decode_batch(self, messages: list[Message]) -> tuple[list[Record], int]:
        records: list[Record] = []
        eof = -1
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    eof = max(eof, message.offset() or 0)
                else:
                    log.warning("schemas topic %s: %s", self.topic, error)
                continue
            record = decode(message.key(), message.value())
            if record is not None:
                records.append(record)
        return records, eof

    def _hand_over(self, records: list[Record], position: int, generation: int) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._apply, records, position, generation)

    def _apply(self, records: list[Record], position: int, generation: int) -> None:
        if generation != self._generation:
            return  # a reader of a deleted incarnation of the topic
        for record in records:
            self._on_record(record)
            self._seen.add(record.key)
        self._position = max(self._position, position)
        still_waiting = []
        for offset, future in self._waiters:
            if future.done():
                continue
            if self._position >= offset:
                future.set_result(None)
            else:
                still_waiting.append((offset, future))
        self._waiters = still_waiting

    async def _wait_for(self, offset: int) -> None:
        if self._position >= offset:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((offset, future))
        try:
            await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            raise operation_timeout(
                f"Timed out reading the schemas topic {self.topic} up to offset {offset}"
            ) from None

    async def _end_offset(self) -> int:
        """The last stable offset: where a ``read_committed`` reader is caught up."""
        request = {self._tp: OffsetSpec.latest()}
        futures = self._admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=self._timeout_s,
        )
        result = await asyncio.wrap_future(futures[self._tp])
        return int(result.offset)

    async def catch_up(self) -> None:
        """Wait until every record committed so far has been applied."""
        await self._wait_for(await self._end_offset_patiently())

    async def _end_offset_patiently(self) -> int:
        # A topic created a moment ago has no leader yet; on a loaded broker that takes seconds.
        deadline = time.monotonic() + max(self._timeout_s, 10.0)
        backoff = Backoff(initial_s=0.1, max_s=1.0, jitter=0.0)
        while True:
            try:
                return await self._end_offset()
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                transient = error.retriable() or error.code() in TRANSIENT_CODES
                delay = backoff.next_delay()
                if not transient or time.monotonic() + delay > deadline:
                    raise store_error(f"Cannot read the end of the schemas topic: {exc}") from None
            await asyncio.sleep(delay)

    # --- writing ----------------------------------------------------------------------------

    async def write(self, plan: WritePlan[T]) -> T:
        """Run ``plan`` as the single writer on fresh state; commit its records; return its
        answer once they are applied locally. ``plan`` may run more than once."""
        async with self._write_lock:
            if await self._lost():
                await self._restore()
            return await self._write_with_retries(plan)

    async def _write_with_retries(self, plan: WritePlan[T]) -> T:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return await self._write_once(plan)
            except KafkaException as exc:
                await self._recover(exc.args[0], attempt)
        raise store_error(
            f"Failed to write to the Kafka store (topic {self.topic}) after "
            f"{WRITE_ATTEMPTS} attempts"
        )

    async def _write_once(self, plan: WritePlan[T]) -> T:
        await self._run(self._ensure_producer)
        await self.catch_up()
        answer, records = plan()
        if records:
            end = await self._run(self._commit, records)
            await self._wait_for(end)
        return answer

    async def _recover(self, error: KafkaError, attempt: int) -> None:
        fenced = error.code() == KafkaError._FENCED
        log.log(logging.INFO if fenced else logging.WARNING,
                "schemas topic write attempt %d failed%s: %s", attempt,
                " (another registry instance wrote meanwhile; retrying)" if fenced else "", error)
        if error.txn_requires_abort() and not error.fatal():
            try:
                await self._run(self._abort)
                return
            except KafkaException:
                pass
        self._producer = None  # fenced (another instance wrote) or broken: start over
        await asyncio.sleep(WRITE_BACKOFF.delay(attempt - 1))  # de-synchronise

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_pool, fn, *args)

    def _ensure_producer(self) -> None:
        if self._producer is not None:
            return
        producer = Producer({
            "bootstrap.servers": self._bootstrap,
            "client.id": self._client_id,
            "transactional.id": self.transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        }, logger=kafka_log)
        producer.init_transactions(self._timeout_s)
        self._producer = producer

    def _commit(self, records: list[Record]) -> int:
        """Produce ``records`` in one transaction; return the offset just after the last."""
        producer = self._producer
        assert producer is not None
        offsets: list[int] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                offsets.append(msg.offset() or 0)

        producer.begin_transaction()
        for record in records:
            key, value = encode(record)
            producer.produce(self.topic, key=key, value=value, partition=0, on_delivery=delivered)
        producer.commit_transaction(self._timeout_s)
        if len(offsets) != len(records):
            raise RegistryError(500, 50001, "Kafka did not confirm every schema record")
        return max(offsets) + 1

    def _abort(self) -> None:
        if self._producer is not None:
            self._producer.abort_transaction(self._timeout_s)

    # --- a deleted topic ----------------------------------------------------------------------

    async def _current_topic_id(self) -> str | None:
        """The topic's id now; None if it does not exist. Raises ``KafkaException`` otherwise."""
        futures = self._admin.describe_topics(TopicCollection([self.topic]),
                                              request_timeout=min(self._timeout_s, 10.0))
        try:
            description = await asyncio.wrap_future(futures[self.topic])
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
            raise
        return str(description.topic_id)

    async def _created_topic_id(self) -> str | None:
        """The id of a topic that exists (metadata of a brand-new topic may lag a moment)."""
        for _ in range(50):
            topic_id = await self._current_topic_id()
            if topic_id is not None:
                return topic_id
            await asyncio.sleep(0.1)
        return None

    async def _lost(self) -> bool:
        """Whether the topic this instance read is gone (deleted, or deleted and re-created).
        Kafka unreachable is no verdict: False."""
        try:
            return await self._current_topic_id() != self._topic_id
        except KafkaException as exc:
            log.debug("schemas topic %s: cannot check it: %s", self.topic, exc)
            return False

    async def _watch(self) -> None:
        """Restore the topic soon after it is deleted, even if nobody writes."""
        while True:
            await asyncio.sleep(self._watch_interval_s)
            try:
                if await self._lost():
                    async with self._write_lock:
                        if await self._lost():
                            await self._restore()
            except RegistryError as exc:
                if exc.message != self._restore_error:
                    log.error("%s", exc.message)
                self._restore_error = exc.message
            except Exception:
                log.exception("schemas topic %s: restoring it failed; trying again", self.topic)

    async def _restore(self) -> None:
        """Re-create the topic and re-publish the in-memory state to it (under the write lock).

        Raises :class:`RegistryError` (50001) while the topic cannot be re-created.
        """
        records = self._snapshot()
        lost = self._topic_id
        log.log(logging.DEBUG if self._restore_error else logging.WARNING,
                "schemas topic %s (id %s) was deleted: re-creating it and re-publishing the %d "
                "records this registry holds in memory", self.topic, lost, len(records))
        await self._stop_reader()
        self._producer = None
        try:
            await self._ensure_topic()
            created = await self._created_topic_id()
        except (KafkaException, RuntimeError) as exc:
            reason = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
            raise self._cannot_restore(reason) from None
        if created is None or created == lost:
            raise self._cannot_restore("the deleted topic is still being removed")
        self._topic_id = created
        self._start_reader()
        await self._write_with_retries(lambda: (None, [r for r in records if r.key not in self._seen]))
        self.restores += 1
        self._restore_error = None
        log.warning("schemas topic %s restored (id %s): %d records re-published", self.topic, created,
                    len(records))

    def _cannot_restore(self, reason: str) -> RegistryError:
        return store_error(
            f"The schemas topic {self.topic} was deleted and cannot be re-created yet ({reason}); "
            "the registry keeps serving what it holds in memory and refuses writes until then"
        )
