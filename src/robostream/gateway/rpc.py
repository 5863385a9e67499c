"""RPC to robots: requests from ``<prefix>.rpc.requests`` over the robot's WebSocket, responses
(same ``correlation_id``) to ``<prefix>.rpc.responses``.

* A request for a connected robot is sent at once as an ``rpc_request`` frame (to its newest
  WebSocket); its ``rpc_response`` frame becomes the response record.
* A request for a robot that is not connected waits (``gateway.rpc_max_pending_per_robot``) and
  is sent when the robot connects.
* At the deadline (the request's, or now + ``gateway.rpc_default_timeout_s``) a call that got no
  answer gets a ``timeout`` response; a robot without a token gets ``not_found`` at once; calls
  still open at shutdown get ``cancelled``.

The requests topic is read from its own thread by a consumer that is *assigned* every partition
(each gateway sees every request; group ``<client_id>-gateway-rpc-<prefix>`` only stores the
position). A new group starts at the end of the topic.

Several gateways: each holds every call; :class:`~robostream.gateway.rpc_registry.CallRegistry`
(Redis) lets one gateway deliver it (the one the robot is connected to) and one answer it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import msgpack
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from robostream.config import Settings
from robostream.gateway.auth import Identity, TokenStore
from robostream.gateway.dlq import dlq_record
from robostream.gateway.metrics import GatewayMetrics
from robostream.gateway.producer import DeliveryTracker, GatewayProducer
from robostream.gateway.protocol import GatewayCode
from robostream.gateway.rpc_registry import CallRegistry, Op
from robostream.schemas import KafkaRecord, SchemaIdResolver, ValidationError, decode_value, encode_value
from robostream.schemas.catalog import subject_name
from robostream.topics import dlq_topic, rpc_requests_topic, rpc_responses_topic

log = logging.getLogger(__name__)
T = TypeVar("T")
_librdkafka_log = logging.getLogger("robostream.gateway.librdkafka")
RPC_CONTENT_TYPE = b"application/vnd.robostream.rpc_event+avro"
STATUSES = ("ok", "error", "timeout", "cancelled", "not_found")


class RpcSink(Protocol):
    """Where requests for a robot go: its WebSocket connection."""

    async def send(self, message: dict[str, Any]) -> bool: ...


@dataclass(slots=True)
class RpcCall:
    """One request on its way to a robot."""

    robot_id: str
    session_id: str | None
    correlation_id: str
    method: str
    params: Any
    deadline_us: int
    timer: asyncio.TimerHandle | None = None
    sent: bool = False
    elsewhere: bool = False  # another gateway delivered it

    def frame(self) -> dict[str, Any]:
        """The ``rpc_request`` frame the robot receives."""
        return {
            "type": "rpc_request",
            "correlation_id": self.correlation_id,
            "method": self.method,
            "params": self.params,
            "deadline": self.deadline_us / 1_000_000,
            "session_id": self.session_id,
        }


def _now_us() -> int:
    return time.time_ns() // 1000


def rpc_group_id(settings: Settings) -> str:
    """Consumer group that stores this gateway's position on the requests topic."""
    return f"{settings.kafka.client_id}-gateway-rpc-{settings.topics.prefix}"


class RpcRouter:
    """Routes RPC requests to connected robots and their responses back to Kafka."""

    def __init__(self, settings: Settings, producer: GatewayProducer, resolver: SchemaIdResolver,
                 tokens: TokenStore, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.producer = producer
        self.resolver = resolver
        self.tokens = tokens
        self.metrics = metrics
        self.requests_topic = rpc_requests_topic(settings)
        self.responses_topic = rpc_responses_topic(settings)
        self.subject = subject_name(self.responses_topic)
        self._sinks: dict[str, list[RpcSink]] = defaultdict(list)
        self._queued: dict[str, deque[RpcCall]] = defaultdict(deque)
        self._open: dict[str, RpcCall] = {}  # correlation_id -> call (queued or sent)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.registry = CallRegistry(settings, self._answered_elsewhere)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, wait_s: float = 30.0) -> None:
        """Start reading requests; returns once the consumer holds its partitions."""
        self._loop = asyncio.get_running_loop()
        await self.registry.start()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._consume, args=(ready,), name="gateway-rpc",
                                        daemon=True)
        self._thread.start()
        await asyncio.wait_for(ready, wait_s)

    async def stop(self) -> None:
        """Answer open calls ``cancelled`` (those it delivered; waiting ones only when no other
        gateway holds them too), then stop reading."""
        calls = list(self._open.values())
        for call in calls:
            self._close_call(call)
        for task in list(self._tasks):
            task.cancel()
        others = await self.registry.others_alive() if calls else False
        calls = [call for call in calls if call.sent or not (others or call.elsewhere)]
        decide = self.registry.decide
        verdicts = await asyncio.gather(*(decide("refuse", c.correlation_id, c.deadline_us) for c in calls))
        trackers = [self._respond(call, "cancelled", code="gateway_shutdown",
                                  message="the gateway shut down before the robot answered")
                    for call, verdict in zip(calls, verdicts, strict=True) if verdict.startswith("won")]
        await asyncio.gather(*(t.done for t in trackers if t is not None), return_exceptions=True)
        self._stop.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 15)
        await self.registry.stop()

    # -- robots ----------------------------------------------------------------------------------

    def attach(self, robot_id: str, sink: RpcSink) -> None:
        """A robot connected: it gets every request that waited for it."""
        self._sinks[robot_id].append(sink)
        queued = self._queued.pop(robot_id, None)
        while queued:
            self._send(queued.popleft(), sink)

    def detach(self, robot_id: str, sink: RpcSink) -> None:
        """A robot's connection closed."""
        sinks = self._sinks.get(robot_id)
        if sinks and sink in sinks:
            sinks.remove(sink)
        if not sinks:
            self._sinks.pop(robot_id, None)

    def connected(self, robot_id: str) -> bool:
        return bool(self._sinks.get(robot_id))

    async def on_response(self, identity: Identity, message: dict[str, Any]) -> dict[str, Any]:
        """A robot's ``rpc_response`` frame -> the response record; returns ``rpc_ack``/``rpc_nack``."""
        correlation_id = message.get("correlation_id")
        call = self._open.get(correlation_id) if isinstance(correlation_id, str) else None
        if call is None or not (call.sent or call.elsewhere) or call.robot_id != identity.robot_id:
            return self._unknown(correlation_id)
        status, problem = _status_of(message)
        if problem:
            return _nack(correlation_id, GatewayCode.RPC_INVALID, problem)
        error = message.get("error")
        answer = {"result": message.get("result"),
                  "code": error.get("code") if isinstance(error, dict) else None,
                  "message": error.get("message") if isinstance(error, dict) else None}
        try:  # a bad answer is refused before the call is taken: the robot may answer again
            encode_value("rpc_event", _datum(call, status, **answer), self.resolver, self.subject)
        except (ValidationError, TypeError, ValueError) as exc:
            return _nack(correlation_id, GatewayCode.RPC_INVALID, str(exc)[:300])
        verdict = await self.registry.decide("answer", call.correlation_id, call.deadline_us)
        if not verdict.startswith("won"):  # answered already (by this gateway or another)
            return self._unknown(correlation_id)
        self._close_call(call)
        tracker = self._respond(call, status, **answer)
        if tracker is None:
            return _nack(correlation_id, GatewayCode.KAFKA_ERROR, "the producer refused the response")
        await tracker.done
        if tracker.errors:
            err = next(iter(tracker.errors.values()))
            return _nack(correlation_id, GatewayCode.KAFKA_ERROR, f"Kafka did not take it: {err.str()}")
        self.metrics.rpc.labels("answered").inc()
        return {"type": "rpc_ack", "correlation_id": correlation_id}

    def _unknown(self, correlation_id: Any) -> dict[str, Any]:
        self.metrics.rpc.labels("unknown_response").inc()
        return _nack(correlation_id, GatewayCode.RPC_UNKNOWN,
                     "no open request with this correlation_id for this robot (expired, answered "
                     "or never sent)")

    def _answered_elsewhere(self, correlation_id: str) -> None:
        """Another gateway answered the call: forget it without answering."""
        call = self._open.get(correlation_id)
        if call is not None:
            self._close_call(call)

    # -- requests (loop side) --------------------------------------------------------------------

    def _accept(self, call: RpcCall) -> None:
        robot = call.robot_id
        self.metrics.rpc.labels("requested").inc()
        if call.correlation_id in self._open:
            log.info("RPC %s: duplicate request ignored", call.correlation_id)
            return
        if not self.settings.auth.allow_unauthenticated and not self.tokens.knows(robot):
            self._finish(call, "not_found", "unknown_robot", f"robot {robot} is not registered")
            return
        remaining = (call.deadline_us - _now_us()) / 1_000_000
        if remaining <= 0:
            self._finish(call, "timeout", "deadline_passed", "the deadline passed before the gateway "
                         "read the request")
            return
        sinks = self._sinks.get(robot)
        if not sinks and len(self._queued[robot]) >= self.settings.gateway.rpc_max_pending_per_robot:
            self._finish(call, "error", GatewayCode.RPC_TOO_MANY_PENDING,
                         f"robot {robot} is not connected and already has "
                         f"{len(self._queued[robot])} requests waiting")
            return
        assert self._loop is not None
        self._open[call.correlation_id] = call
        call.timer = self._loop.call_later(remaining, self._expire, call)
        if sinks:
            self._send(call, sinks[-1])
        else:
            self._queued[robot].append(call)

    def _send(self, call: RpcCall, sink: RpcSink) -> None:
        call.sent = True
        self._spawn(self._send_frame(call, sink))

    async def _send_frame(self, call: RpcCall, sink: RpcSink) -> None:
        verdict = await self.registry.decide("send", call.correlation_id, call.deadline_us)
        if verdict != "ok":  # delivered by another gateway (at most once) or answered
            call.sent, call.elsewhere = False, verdict.startswith("sent:")
            if verdict == "done":
                self._close_call(call)
            return
        if self._open.get(call.correlation_id) is not call:
            await self.registry.decide("unsend", call.correlation_id, call.deadline_us)
            return
        if await sink.send(call.frame()):
            self.metrics.rpc.labels("delivered").inc()
            return
        await self.registry.decide("unsend", call.correlation_id, call.deadline_us)
        if call.correlation_id in self._open:  # the connection died: wait for the next one
            call.sent = False
            sinks = self._sinks.get(call.robot_id)
            if sinks and sinks[-1] is not sink:
                self._send(call, sinks[-1])
            else:
                self._queued[call.robot_id].append(call)

    def _expire(self, call: RpcCall) -> None:
        if self._open.get(call.correlation_id) is not call:
            return
        self._close_call(call)
        self._spawn(self._time_out(call))

    async def _time_out(self, call: RpcCall) -> None:
        """Answer ``timeout`` unless another gateway does: the one that delivered the call, while
        its lease lasts (asked again every quarter lease until it answered or its lease lapsed)."""
        while True:
            verdict = await self.registry.decide("timeout", call.correlation_id, call.deadline_us)
            if verdict != "wait":
                break
            await asyncio.sleep(self.registry.lease_s / 4)
        if verdict == "won-sent" or (verdict == "won" and call.sent):
            self._finish_now(call, "timeout", "timeout",
                             f"robot {call.robot_id} did not answer before the deadline")
        elif verdict == "won":
            self._finish_now(call, "timeout", "timeout",
                             f"robot {call.robot_id} was not connected before the deadline")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close_call(self, call: RpcCall) -> None:
        self._open.pop(call.correlation_id, None)
        if call.timer is not None:
            call.timer.cancel()
        queued = self._queued.get(call.robot_id)
        if queued and call in queued:
            queued.remove(call)
            if not queued:
                self._queued.pop(call.robot_id, None)

    def _finish(self, call: RpcCall, status: str, code: str, message: str, op: Op = "refuse") -> None:
        """Answer ``call`` in the robot's stead, unless another gateway delivered or answered it."""
        async def decided() -> None:
            if (await self.registry.decide(op, call.correlation_id, call.deadline_us)).startswith("won"):
                self._finish_now(call, status, code, message)

        self._spawn(decided())

    def _finish_now(self, call: RpcCall, status: str, code: str, message: str) -> None:
        self.metrics.rpc.labels(status).inc()
        log.info("RPC %s to %s: %s (%s)", call.correlation_id, call.robot_id, status, message)
        self._respond(call, status, code=code, message=message)

    def _respond(self, call: RpcCall, status: str, *, result: Any = None, code: str | None = None,
                 message: str | None = None) -> DeliveryTracker | None:
        """Produce the response record of ``call``; its tracker (None if it could not be produced)."""
        try:
            value = encode_value("rpc_event", _datum(call, status, result, code, message), self.resolver,
                                 self.subject)
        except (ValidationError, TypeError, ValueError):
            log.exception("RPC %s: cannot encode the %s response", call.correlation_id, status)
            return None
        key = f"{call.robot_id}/{call.session_id}" if call.session_id else call.robot_id
        headers = [("correlation_id", call.correlation_id.encode()), ("kind", b"response"),
                   ("content-type", RPC_CONTENT_TYPE)]
        assert self._loop is not None
        tracker = DeliveryTracker(self._loop)
        try:
            if not self.producer.produce_now(self.responses_topic, KafkaRecord(key.encode(), value, headers),
                                             tracker, 0):
                raise BufferError("producer queue full")
        except (BufferError, KafkaException, ValueError) as exc:
            log.error("RPC %s: cannot produce the response: %s", call.correlation_id, exc)
            return None
        tracker.seal()
        return tracker

    def _dead_letter(self, value: bytes, key: bytes | None, error: dict[str, Any]) -> None:
        assert self._loop is not None
        record = dlq_record(value, error, key=key, robot_id=None, source="gateway.rpc", fmt="avro",
                            max_bytes=self.settings.topics.max_message_bytes)
        tracker = DeliveryTracker(self._loop)
        try:
            self.producer.produce_now(dlq_topic(self.settings), record, tracker, 0)
        except (KafkaException, ValueError) as exc:
            log.error("cannot dead-letter a bad RPC request: %s", exc)
        tracker.seal()

    # -- requests (consumer thread) --------------------------------------------------------------

    def _consume(self, ready: asyncio.Future[None]) -> None:
        assert self._loop is not None
        loop = self._loop
        try:
            consumer = self._assigned_consumer()
        except Exception as exc:  # reported to start()
            loop.call_soon_threadsafe(_fail, ready, exc)
            return
        loop.call_soon_threadsafe(_succeed, ready)
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    log.warning("RPC requests: %s", msg.error())
                    continue
                self._read_request(msg.value() or b"", msg.key())
        finally:
            consumer.close()

    def _assigned_consumer(self) -> Consumer:
        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka.bootstrap,
            "client.id": f"{self.settings.kafka.client_id}-gateway-rpc",
            "group.id": rpc_group_id(self.settings),
            "enable.auto.commit": True,
            "auto.offset.reset": "latest",
            "logger": _librdkafka_log,
        })
        metadata = consumer.list_topics(self.requests_topic, timeout=10)
        topic = metadata.topics.get(self.requests_topic)
        if topic is None or topic.error is not None or not topic.partitions:
            consumer.close()
            raise RuntimeError(f"topic {self.requests_topic} is missing: run `robostream topics create`")
        partitions = [TopicPartition(self.requests_topic, p) for p in sorted(topic.partitions)]
        positions = _retrying(lambda: list(consumer.committed(partitions, timeout=10)))
        for tp in positions:
            if tp.offset < 0:  # no stored position: start at the end
                watermarks = partial(consumer.get_watermark_offsets, tp, timeout=10, cached=False)
                tp.offset = _retrying(watermarks)[1]
        consumer.assign(positions)
        return consumer

    def _read_request(self, value: bytes, key: bytes | None) -> None:
        assert self._loop is not None
        try:
            name, datum = decode_value(value, self.resolver)
            if name != "rpc_event" or datum.get("kind") != "request":
                raise ValueError(f"not an RPC request ({name}, kind {datum.get('kind')})")
            call = _call_of(datum, self.settings.gateway.rpc_default_timeout_s)
        except (ValidationError, ValueError, TypeError, LookupError) as exc:
            log.warning("bad record on %s: %s", self.requests_topic, exc)
            error = exc.to_dict() if isinstance(exc, ValidationError) else {
                "code": str(GatewayCode.RPC_INVALID), "message": str(exc)[:300]}
            self._loop.call_soon_threadsafe(self._dead_letter, value, key, error)
            return
        self._loop.call_soon_threadsafe(self._accept, call)


def _retrying(call: Callable[[], T], wait_s: float = 30.0) -> T:
    """``call()``, retried while the cluster is still settling (a new topic or a fresh broker)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            settling = isinstance(err, KafkaError) and (err.retriable() or err.code() in _SETTLING)
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


_SETTLING = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
             KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION,
             KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART)


def _call_of(datum: dict[str, Any], default_timeout_s: float) -> RpcCall:
    raw = datum.get("params")
    params = msgpack.unpackb(raw, raw=False) if raw is not None else None
    deadline = datum.get("deadline")
    if deadline is None:
        deadline = _now_us() + int(default_timeout_s * 1_000_000)
    return RpcCall(datum["robot_id"], datum.get("session_id"), datum["correlation_id"], datum["method"],
                   params, int(deadline))


def _datum(call: RpcCall, status: str, result: Any = None, code: str | None = None,
           message: str | None = None) -> dict[str, Any]:
    """The ``rpc_event`` response of ``call``."""
    error = None
    if status != "ok":
        error = {"code": str(code or status), "message": message or status}
    return {
        "timestamp": _now_us(), "robot_id": call.robot_id, "session_id": call.session_id,
        "kind": "response", "correlation_id": call.correlation_id, "method": call.method,
        "params": None, "deadline": None, "status": status,
        "result": None if result is None else msgpack.packb(result, use_bin_type=True),
        "error": error,
    }


def _status_of(message: dict[str, Any]) -> tuple[str, str | None]:
    error = message.get("error")
    status = message.get("status", "error" if error else "ok")
    if status not in STATUSES:
        return "", f"status must be one of {', '.join(STATUSES)}, got {status!r:.40}"
    well_formed = isinstance(error, dict) and all(isinstance(error.get(k), str) for k in ("code", "message"))
    if status != "ok" and error is not None and not well_formed:
        return "", "error must be {code: string, message: string}"
    return status, None


def _nack(correlation_id: Any, code: GatewayCode, message: str) -> dict[str, Any]:
    return {"type": "rpc_nack", "correlation_id": correlation_id if isinstance(correlation_id, str) else None,
            "code": str(code), "message": message}


def _succeed(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
