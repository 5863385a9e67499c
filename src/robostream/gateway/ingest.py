"""One batch from frame to Kafka: decode and validate, check ids, claim-check, produce, DLQ.

:meth:`BatchIngestor.ingest` returns a :class:`PendingBatch` as soon as every record is in the
producer's hands; its ``tracker.done`` resolves when Kafka has reported on all of them, and
:meth:`PendingBatch.replies` then gives the nacks and the ack to send back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from robostream.config import Settings
from robostream.gateway.auth import Identity
from robostream.gateway.claimcheck import ClaimCheckError, ClaimCheckStore, needs_claim_check
from robostream.gateway.dlq import dlq_record, envelope_key, serialise_item
from robostream.gateway.limits import RateLimiter
from robostream.gateway.metrics import GatewayMetrics
from robostream.gateway.producer import DeliveryTracker, GatewayProducer
from robostream.gateway.protocol import (
    RETRIABLE_CODES,
    FrameFormat,
    GatewayCode,
    ack_frame,
    decode_message,
    gateway_error,
    nack_frame,
)
from robostream.schemas import (
    DataType,
    DecodedBatch,
    Envelope,
    ErrorCode,
    KafkaRecord,
    SchemaIdResolver,
    ValidationError,
    encode_record,
    frame_items,
    parse_into,
)
from robostream.topics import dlq_topic, topic_for

log = logging.getLogger(__name__)

#: Bytes of an oversized frame kept for its DLQ copy.
OVERSIZED_PREFIX_BYTES = 64 * 1024
#: Longest stretch of encoding before the ingest of a frame lets other connections run (seconds):
#: a 100-envelope frame must not hold every other robot's acks for its whole encode.
SLICE_S = 0.002


@dataclass(slots=True)
class Rejection:
    """A rejected envelope (or frame) and, when it went to the DLQ, its record's token."""

    error: dict[str, Any]
    retriable: bool
    dlq_token: int | None = None


@dataclass(slots=True)
class PendingBatch:
    """A batch whose records are with the producer; :meth:`replies` once ``tracker.done``."""

    batch: int
    nbytes: int
    received_at: float
    tracker: DeliveryTracker
    data: list[tuple[int, int, str]] = field(default_factory=list)  # token -> (index, seq, data_type)
    rejections: list[Rejection] = field(default_factory=list)

    def replies(self, metrics: GatewayMetrics | None = None) -> list[dict[str, Any]]:
        """Nacks (by index), then the ack. Call after ``tracker.done``."""
        errors = self.tracker.errors
        nacks = [
            nack_frame(self.batch, r.error, retriable=r.retriable,
                       dlq=r.dlq_token is not None and r.dlq_token not in errors)
            for r in self.rejections
        ]
        best: int | None = None
        accepted: Counter[str] = Counter()
        for token, (index, seq, data_type) in enumerate(self.data):
            err = errors.get(token)
            if err is None:
                accepted[data_type] += 1
                if best is None or seq > best:
                    best = seq
                continue
            failure = gateway_error(
                GatewayCode.KAFKA_ERROR, f"Kafka did not take the record: {err.name()}: {err.str()}",
                index=index, seq=seq, data_type=data_type,
            )
            nacks.append(nack_frame(self.batch, failure, retriable=True, dlq=False))
        nacks.sort(key=lambda n: -1 if n["index"] is None else n["index"])
        if metrics is not None:
            _count(metrics, accepted, nacks, errors)
        count = sum(accepted.values())
        return [*nacks, ack_frame(self.batch, best, count, len(nacks))]


def _count(metrics: GatewayMetrics, accepted: Counter[str], nacks: list[dict[str, Any]],
           errors: dict[int, KafkaError]) -> None:
    for data_type, n in accepted.items():
        metrics.accepted.labels(data_type).inc(n)
    for code, n in Counter(n["code"] for n in nacks).items():
        metrics.rejected.labels(code).inc(n)
    for code, n in Counter(n["code"] for n in nacks if n["dlq"]).items():
        metrics.dlq_records.labels(code).inc(n)
    for name, n in Counter(err.name() for err in errors.values()).items():
        metrics.kafka_errors.labels(name).inc(n)


class _Slicer:
    """Lets other connections run every :data:`SLICE_S` of one frame's ingest, and measures the
    frame's time on the event loop and its longest stretch without yielding."""

    __slots__ = ("busy", "longest", "start")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.busy = 0.0
        self.longest = 0.0

    async def tick(self) -> None:
        """Yield to the loop once the current stretch is longer than :data:`SLICE_S`."""
        held = time.perf_counter() - self.start
        if held > SLICE_S:
            self._close(held)
            await asyncio.sleep(0)
            self.start = time.perf_counter()

    def pause(self) -> None:
        """Before an await that lets the loop run (an upload): the stretch ends here."""
        self._close(time.perf_counter() - self.start)

    def resume(self) -> None:
        self.start = time.perf_counter()

    def finish(self, metrics: GatewayMetrics, envelopes: int) -> None:
        self._close(time.perf_counter() - self.start)
        metrics.ingest_cpu.observe(self.busy)
        metrics.loop_hold.observe(self.longest)
        metrics.ingest_envelopes.inc(envelopes)

    def _close(self, held: float) -> None:
        self.busy += held
        self.longest = max(self.longest, held)


@dataclass(slots=True)
class _Context:
    """What the ingest of one frame needs to know about where it came from."""

    pending: PendingBatch
    frame: bytes | str
    fmt: FrameFormat
    identity: Identity
    source: str
    items: list[Any] | None = None
    slicer: _Slicer = field(default_factory=_Slicer)
    ingest_time_ms: int = field(default_factory=lambda: int(time.time() * 1000))  # one per frame


class BatchIngestor:
    """Turns frames into Kafka records (shared by the WebSocket and HTTP transports)."""

    def __init__(
        self,
        settings: Settings,
        producer: GatewayProducer,
        resolver: SchemaIdResolver,
        claim_checks: ClaimCheckStore,
        metrics: GatewayMetrics,
    ) -> None:
        self.producer = producer
        self.resolver = resolver
        self.claim_checks = claim_checks
        self.metrics = metrics
        self.prefix = settings.topics.prefix
        self.topics = {str(dt): topic_for(dt, settings) for dt in DataType}
        self.dlq = dlq_topic(settings)
        self.max_inline = settings.gateway.max_inline_bytes
        self.max_batch = settings.gateway.max_batch_messages
        self.max_frame = settings.gateway.max_frame_bytes
        self.max_record = settings.topics.max_message_bytes
        #: per-robot message rate (one bucket per robot, shared by every connection); None: no limit
        self.rate_limiter = RateLimiter.from_settings(settings.gateway)

    # -- entry points ----------------------------------------------------------------------------

    async def ingest(
        self, frame: bytes | str, fmt: FrameFormat, *, identity: Identity, source: str, batch: int,
        nbytes: int, received_at: float | None = None,
    ) -> PendingBatch:
        """Validate ``frame`` and hand its records (and its rejects, to the DLQ) to the producer."""
        pending = self._pending(batch, nbytes, received_at)
        ctx = _Context(pending, frame, fmt, identity, source)
        envelopes = 0
        try:
            items, json_mode = frame_items(frame, fmt, max_messages=self.max_batch)
        except ValidationError as exc:
            await self._reject_frame(ctx, exc.to_dict(), frame)
        else:
            envelopes = len(items)
            decoded = await self._parse(ctx.slicer, items, json_mode)
            if not await self._rate_limited(ctx, decoded.envelopes, len(decoded.errors)):
                await self._route(ctx, decoded.envelopes, decoded.errors)
        pending.tracker.seal()
        ctx.slicer.finish(self.metrics, envelopes)
        return pending

    @staticmethod
    async def _parse(slicer: _Slicer, items: list[Any], json_mode: bool) -> DecodedBatch:
        """Validate each envelope (as :func:`decode_frame` does), letting other connections run
        every :data:`SLICE_S`: a 100-envelope frame would hold the event loop for ~10 ms."""
        batch = DecodedBatch([], [])
        for index, item in enumerate(items):
            parse_into(batch, index, item, json_mode, one_pass=True)
            await slicer.tick()
        return batch

    async def reject_oversized(
        self, prefix: bytes | str, size: int, fmt: FrameFormat, *, identity: Identity, source: str,
        batch: int, received_at: float | None = None,
    ) -> PendingBatch:
        """Nack a frame above ``gateway.max_frame_bytes``; its first bytes go to the DLQ."""
        pending = self._pending(batch, 0, received_at)
        ctx = _Context(pending, prefix, fmt, identity, source)
        error = gateway_error(
            ErrorCode.TOO_LARGE,
            f"frame of {size} bytes exceeds gateway.max_frame_bytes ({self.max_frame}); send smaller "
            "batches (large files go inline up to that size and the gateway moves them to S3)",
        )
        await self._reject_frame(ctx, error, prefix, original_size=size)
        pending.tracker.seal()
        return pending

    # -- steps -----------------------------------------------------------------------------------

    def _pending(self, batch: int, nbytes: int, received_at: float | None) -> PendingBatch:
        tracker = DeliveryTracker(asyncio.get_running_loop())
        return PendingBatch(batch, nbytes, received_at or time.perf_counter(), tracker)

    async def _rate_limited(self, ctx: _Context, envelopes: list[Envelope], invalid: int) -> bool:
        """Take the batch's messages from its robot's bucket; when over the limit, nack the whole
        frame ``rate_limited`` (retriable, with ``retry_after_ms``): nothing to Kafka, no DLQ."""
        if self.rate_limiter is None:
            return False
        robot = ctx.identity.robot_id
        counts: Counter[str] = Counter()
        if robot is not None:
            counts[robot] = len(envelopes) + invalid
        else:  # unauthenticated: each envelope counts for the robot it names
            counts.update(envelope.robot_id for envelope in envelopes)
        limited = self.rate_limiter.acquire(counts)
        if limited is None:
            return False
        transport = ctx.source.rpartition(".")[2]
        self.metrics.rate_limited.labels(limited.robot_id, transport).inc()
        self.metrics.rate_limited_messages.labels(limited.robot_id, transport).inc(sum(counts.values()))
        await self._reject(ctx, gateway_error(
            GatewayCode.RATE_LIMITED, limited.message, retry_after_ms=limited.retry_after_ms,
        ))
        return True

    async def _route(self, ctx: _Context, envelopes: list[Envelope], errors: list[ValidationError]) -> None:
        bad = {e.index for e in errors}
        indexes = [i for i in range(len(envelopes) + len(errors)) if i not in bad]
        for error in errors:
            await self._reject(ctx, error.to_dict())
        allowed: list[tuple[int, Envelope]] = []
        robot = ctx.identity.robot_id
        for index, envelope in zip(indexes, envelopes, strict=True):
            if robot is not None and envelope.robot_id != robot:
                await self._reject(ctx, gateway_error(
                    GatewayCode.FORBIDDEN_ROBOT_ID,
                    f"envelope #{index}: this connection is robot {robot}; it may not write "
                    f"robot_id {envelope.robot_id}",
                    index=index, seq=envelope.seq, data_type=str(envelope.data_type), path="robot_id",
                ))
            else:
                allowed.append((index, envelope))
        allowed = await self._claim_checks(ctx, allowed)
        for index, envelope in allowed:
            await self._produce(ctx, index, envelope)
            await ctx.slicer.tick()  # in order: this connection waits, others run

    async def _claim_checks(
        self, ctx: _Context, allowed: list[tuple[int, Envelope]]
    ) -> list[tuple[int, Envelope]]:
        big = [k for k, (_, env) in enumerate(allowed) if needs_claim_check(env, self.max_inline)]
        if not big:
            return allowed
        ctx.slicer.pause()
        results = await asyncio.gather(
            *(self.claim_checks.check_in(allowed[k][1]) for k in big), return_exceptions=True
        )
        ctx.slicer.resume()
        failed: set[int] = set()
        for k, result in zip(big, results, strict=True):
            index, envelope = allowed[k]
            if isinstance(result, Envelope):
                allowed[k] = (index, result)
                self.metrics.claim_checks.inc()
                self.metrics.claim_check_bytes.inc(envelope.payload["blob"]["size_bytes"])
                continue
            if not isinstance(result, ClaimCheckError):
                log.error("claim-check of envelope #%d failed", index, exc_info=result)
            failed.add(k)
            await self._reject(ctx, gateway_error(
                GatewayCode.STORAGE_ERROR, f"envelope #{index}: {result}", index=index,
                seq=envelope.seq, data_type=str(envelope.data_type),
            ), retriable=True)
        return [pair for k, pair in enumerate(allowed) if k not in failed]

    def _encode(self, index: int, envelope: Envelope, ingest_time_ms: int) -> KafkaRecord:
        try:
            record = encode_record(envelope, self.resolver, topic_prefix=self.prefix,
                                   ingest_time_ms=ingest_time_ms)
        except ValidationError as exc:
            raise exc.located(index=index, seq=envelope.seq) from None
        size = len(record.value) + len(record.key)
        if size > self.max_record:
            raise ValidationError(
                ErrorCode.TOO_LARGE, f"the Kafka record would be {size} bytes",
                expected=f"at most topics.max_message_bytes ({self.max_record}); binary payloads "
                f"above {self.max_inline} bytes go to S3 by claim-check",
                index=index, seq=envelope.seq, data_type=str(envelope.data_type),
            )
        return record

    async def _produce(self, ctx: _Context, index: int, envelope: Envelope) -> None:
        try:
            record = self._encode(index, envelope, ctx.ingest_time_ms)
        except ValidationError as exc:
            await self._reject(ctx, exc.to_dict())
            return
        except Exception as exc:  # the schema registry could not be reached: try again later
            log.warning("cannot encode envelope #%d: %s", index, exc)
            await self._reject(ctx, gateway_error(
                GatewayCode.KAFKA_ERROR, f"envelope #{index}: cannot encode the record ({exc})",
                index=index, seq=envelope.seq, data_type=str(envelope.data_type),
            ), retriable=True)
            return
        pending = ctx.pending
        token = len(pending.data)
        pending.data.append((index, envelope.seq, str(envelope.data_type)))
        topic = self.topics[envelope.data_type]
        try:
            if not self.producer.produce_now(topic, record, pending.tracker, token):
                ctx.slicer.pause()  # librdkafka's queue is full: the loop runs while we wait
                try:
                    await self.producer.send(topic, record, pending.tracker, token)
                finally:
                    ctx.slicer.resume()
        except (KafkaException, ValueError) as exc:
            pending.data.pop()
            await self._reject(ctx, gateway_error(
                GatewayCode.KAFKA_ERROR, f"envelope #{index}: the producer refused the record ({exc})",
                index=index, seq=envelope.seq, data_type=str(envelope.data_type),
            ), retriable=True)

    # -- rejections ------------------------------------------------------------------------------

    async def _reject(self, ctx: _Context, error: dict[str, Any], *, retriable: bool | None = None) -> None:
        """Nack one envelope; unless retriable, copy it (as the robot sent it) to the DLQ."""
        retry = error["code"] in RETRIABLE_CODES if retriable is None else retriable
        rejection = Rejection(error, retry)
        ctx.pending.rejections.append(rejection)
        if retry:
            return
        index = error.get("index")
        item = self._item(ctx, index)
        value = serialise_item(item, ctx.fmt) if item is not None else _as_bytes(ctx.frame)
        record = dlq_record(value, error, key=envelope_key(item), robot_id=ctx.identity.robot_id,
                            source=ctx.source, fmt=ctx.fmt, max_bytes=self.max_record)
        rejection.dlq_token = await self._produce_dlq(ctx, record, len(ctx.pending.rejections))

    async def _reject_frame(
        self, ctx: _Context, error: dict[str, Any], raw: bytes | str, original_size: int | None = None
    ) -> None:
        """Nack a whole frame; its raw bytes (cut to the record limit) go to the DLQ."""
        rejection = Rejection(error, retriable=False)
        ctx.pending.rejections.append(rejection)
        record = dlq_record(_as_bytes(raw), error, key=None, robot_id=ctx.identity.robot_id,
                            source=ctx.source, fmt=ctx.fmt, max_bytes=self.max_record,
                            original_size=original_size)
        rejection.dlq_token = await self._produce_dlq(ctx, record, len(ctx.pending.rejections))

    async def _produce_dlq(self, ctx: _Context, record: KafkaRecord, number: int) -> int | None:
        token = -number  # data records use tokens >= 0
        ctx.slicer.pause()
        try:
            await self.producer.send(self.dlq, record, ctx.pending.tracker, token)
        except (KafkaException, ValueError) as exc:
            log.error("cannot write a dead letter to %s: %s", self.dlq, exc)
            return None
        finally:
            ctx.slicer.resume()
        return token

    def _item(self, ctx: _Context, index: int | None) -> Any:
        """Envelope ``index`` as the robot sent it (the frame is parsed again, on errors only)."""
        if index is None:
            return None
        if ctx.items is None:
            try:
                parsed = decode_message(ctx.frame, ctx.fmt)
            except ValueError:
                parsed = []
            ctx.items = parsed if type(parsed) is list else [parsed]
        return ctx.items[index] if 0 <= index < len(ctx.items) else None


def _as_bytes(frame: bytes | str | bytearray | memoryview) -> bytes:
    return frame.encode("utf-8", "replace") if isinstance(frame, str) else bytes(frame)
