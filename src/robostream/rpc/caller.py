"""Call a robot: write an ``rpc_event`` request to ``<prefix>.rpc.requests`` and wait for the
response with the same ``correlation_id`` on ``<prefix>.rpc.responses``.

The gateway (:mod:`robostream.gateway.rpc`) reads the requests topic, sends each request to the
robot's WebSocket (or holds it until the robot connects) and writes the robot's answer, or a
``timeout`` response at the deadline, to the responses topic. The caller only talks to Kafka:

    async with RpcCaller(settings) as caller:
        reply = await caller.call("robot_001", "ping", {}, timeout_s=5)
        print(reply.status, reply.result)

One background thread reads every partition of the responses topic from its end (positioned
before the first request is written, so no answer is missed) and hands the answers that a call
waits for to the event loop; any other answer (another caller's, or one after its caller gave
up) is skipped. If no response arrives by the deadline plus :data:`GRACE_S` (no gateway
running), the call ends with a ``timeout`` reply of code ``no_answer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import threading
import time
import uuid
from typing import Any, Literal

import msgpack
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import BaseModel, ConfigDict

from robostream.config import Settings, validate_id
from robostream.errors import RobostreamError
from robostream.gateway.protocol import GatewayCode
from robostream.schemas import ConfluentSchemaResolver, ValidationError, decode_value, encode_value
from robostream.schemas.catalog import schema_str, subject_name
from robostream.topics import rpc_requests_topic, rpc_responses_topic

log = logging.getLogger(__name__)
#: librdkafka's own log lines (connection failures...), as the gateway routes them.
LIBRDKAFKA_LOG = logging.getLogger("robostream.rpc.librdkafka")

#: Method names, as the ``rpc_event`` schema documents them (``camera.set_exposure``).
METHOD_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
_METHOD_RE = re.compile(METHOD_PATTERN)
#: Largest request params, packed as MessagePack.
MAX_PARAMS_BYTES = 64 * 1024
#: How long after the deadline the caller still waits for the gateway's ``timeout`` response.
GRACE_S = 2.0
Status = Literal["ok", "error", "timeout", "cancelled", "not_found"]
Outcome = Literal["ok", "robot_error", "no_answer", "refused"]
#: ``error`` codes the gateway answers in the robot's stead.
GATEWAY_ERRORS = frozenset({str(GatewayCode.RPC_TOO_MANY_PENDING)})


class RpcCallError(RobostreamError):
    """A call that could not be made (Kafka or the schema registry did not answer)."""


class RpcInputError(RpcCallError, ValueError):
    """A robot id, method, params or timeout that cannot be sent."""


class RpcErrorBody(BaseModel):
    """Why a call failed: a machine-readable ``code`` and a sentence."""

    model_config = ConfigDict(frozen=True)
    code: str
    message: str


class RpcReply(BaseModel):
    """The outcome of one call: the robot's answer (``ok``/``error``), or what the platform says
    instead (``timeout``, ``not_found``, ``cancelled``). As JSON, bytes in a result are base64."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64")
    robot_id: str
    method: str
    correlation_id: str
    status: Status
    result: Any = None
    error: RpcErrorBody | None = None
    elapsed_ms: float

    @property
    def outcome(self) -> Outcome:
        """``ok``; ``robot_error`` (the robot's own error answer); ``no_answer`` (offline, busy
        or late: the deadline passed); ``refused`` (unknown robot, too many waiting requests,
        gateway shutting down)."""
        if self.status == "ok":
            return "ok"
        if self.status == "timeout":
            return "no_answer"
        if self.status == "error" and not (self.error and self.error.code in GATEWAY_ERRORS):
            return "robot_error"
        return "refused"


def check_request(robot_id: str, method: str, params: Any, timeout_s: float) -> bytes:
    """The packed params of a valid request; :class:`RpcInputError` says what is wrong."""
    try:
        validate_id(robot_id, "robot_id")
    except ValueError as exc:
        raise RpcInputError(str(exc)) from None
    if not isinstance(method, str) or not _METHOD_RE.fullmatch(method):
        raise RpcInputError(f"invalid method {method!r:.140}: expected 1-128 characters of letters, "
                            "digits and '_', '.', ':', '-' (e.g. camera.set_exposure)")
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise RpcInputError(f"timeout must be a number of seconds more than 0, got {timeout_s}")
    try:
        packed: bytes = msgpack.packb(params, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RpcInputError(f"params cannot be sent: {exc}") from None
    if len(packed) > MAX_PARAMS_BYTES:
        raise RpcInputError(f"params take {len(packed)} bytes; at most {MAX_PARAMS_BYTES} are sent")
    return packed


class RpcCaller:
    """Writes requests and waits for their responses (one instance serves many concurrent calls)."""

    def __init__(self, settings: Settings, *, grace_s: float = GRACE_S) -> None:
        self.settings = settings
        self.grace_s = grace_s
        self.requests_topic = rpc_requests_topic(settings)
        self.responses_topic = rpc_responses_topic(settings)
        self.resolver = ConfluentSchemaResolver(settings.schema_registry.url)
        self._producer = Producer({
            "bootstrap.servers": settings.kafka.bootstrap, "client.id": f"{settings.kafka.client_id}-rpc",
            "acks": "all", "enable.idempotence": True, "linger.ms": 0, "message.timeout.ms": 15_000,
            "logger": LIBRDKAFKA_LOG,
        })
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, wait_s: float = 30.0) -> None:
        """Register the schema and position the response reader; :class:`RpcCallError` if
        Kafka or the registry does not answer within ``wait_s``."""
        self._loop = asyncio.get_running_loop()
        subject = subject_name(self.requests_topic)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.resolver.id_for, subject, schema_str("rpc_event")),
                                   wait_s)
        except Exception as exc:
            raise RpcCallError(f"the schema registry at {self.settings.schema_registry.url} did not "
                               f"answer: {exc}") from None
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._read, args=(ready,), name="rpc-caller", daemon=True)
        self._thread.start()
        try:
            await asyncio.wait_for(ready, wait_s)
        except TimeoutError:
            # The reader's own Kafka timeouts may end just after ours: either way the same sentence,
            # and no waiting for that thread (a daemon; it stops by itself once they end).
            self._stop.set()
            self._thread = None
            raise RpcCallError(f"cannot read {self.responses_topic} from Kafka at "
                               f"{self.settings.kafka.bootstrap}: no answer within {wait_s:g} s") from None
        except RpcCallError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise RpcCallError(f"cannot read {self.responses_topic} from Kafka at "
                               f"{self.settings.kafka.bootstrap}: {exc}") from None

    async def close(self) -> None:
        """Stop reading (calls still waiting end with ``cancelled``)."""
        self._stop.set()
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None
        await asyncio.to_thread(self._producer.flush, 5)

    async def __aenter__(self) -> RpcCaller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, robot_id: str, method: str, params: Any = None, *, timeout_s: float,
                   session_id: str | None = None) -> RpcReply:
        """Call ``method`` on ``robot_id``; returns once the response arrives or the deadline passed.

        Raises :class:`RpcInputError` for a request that cannot be sent and :class:`RpcCallError`
        when Kafka refuses it.
        """
        packed = check_request(robot_id, method, params, timeout_s)
        if self._loop is None or self._thread is None:
            raise RpcCallError("the caller is not started (use `async with RpcCaller(...)`)")
        correlation_id = uuid.uuid4().hex
        started = time.monotonic()
        deadline_us = time.time_ns() // 1000 + round(timeout_s * 1_000_000)
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._waiting[correlation_id] = future
        try:
            self._produce(robot_id, session_id, correlation_id, method, packed, deadline_us)
            datum = await asyncio.wait_for(future, timeout_s + self.grace_s)
        except TimeoutError:
            datum = {"status": "timeout", "error": {"code": "no_answer", "message": (
                f"no answer within {timeout_s:g} s, not even the gateway's timeout: is a gateway "
                f"running on this Kafka cluster ({self.settings.kafka.bootstrap})?")}}
        finally:
            self._waiting.pop(correlation_id, None)
        return _reply(robot_id, method, correlation_id, datum, time.monotonic() - started)

    def _produce(self, robot_id: str, session_id: str | None, correlation_id: str, method: str,
                 params: bytes, deadline_us: int) -> None:
        datum = {"timestamp": time.time_ns() // 1000, "robot_id": robot_id, "session_id": session_id,
                 "kind": "request", "correlation_id": correlation_id, "method": method, "params": params,
                 "deadline": deadline_us}
        try:
            value = encode_value("rpc_event", datum, self.resolver, subject_name(self.requests_topic))
        except ValidationError as exc:
            raise RpcInputError(str(exc)) from None
        headers: list[tuple[str, str | bytes | None]] = [("correlation_id", correlation_id.encode()),
                                                         ("kind", b"request")]
        try:
            self._producer.produce(self.requests_topic, value, robot_id.encode(), headers=headers,
                                   on_delivery=self._delivered)
        except (BufferError, KafkaException) as exc:
            raise RpcCallError(f"Kafka did not take the request: {exc}") from None

    # -- the reader thread -----------------------------------------------------------------------

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None or self._loop is None:
            return
        correlation_id = _correlation_id(msg)
        error = RpcCallError(f"Kafka did not take the request: {err.str()}")
        self._loop.call_soon_threadsafe(self._settle, correlation_id, None, error)

    def _settle(self, correlation_id: str, datum: dict[str, Any] | None,
                error: BaseException | None = None) -> None:
        future = self._waiting.get(correlation_id)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(datum or {})

    def _read(self, ready: asyncio.Future[None]) -> None:
        assert self._loop is not None
        loop = self._loop
        try:
            consumer = self._positioned_consumer()
        except Exception as exc:  # reported to start()
            with contextlib.suppress(RuntimeError):  # start() gave up and its loop is closed
                loop.call_soon_threadsafe(_settle_ready, ready, exc)
            return
        try:
            loop.call_soon_threadsafe(_settle_ready, ready, None)
        except RuntimeError:  # start() gave up and its loop is closed
            consumer.close()
            return
        try:
            while not self._stop.is_set():
                try:
                    self._producer.poll(0)
                    msg = consumer.poll(0.2)
                    if msg is not None and msg.error() is None:
                        self._take(msg)
                except Exception:  # keep reading: calls wait on this thread
                    log.exception("reading RPC responses failed; retrying")
                    self._stop.wait(1.0)
        finally:
            consumer.close()

    def _take(self, msg: Message) -> None:
        correlation_id = _correlation_id(msg)
        if correlation_id not in self._waiting or self._loop is None:
            return  # another caller's answer, or one nobody waits for any more
        try:
            _, datum = decode_value(msg.value() or b"", self.resolver)
        except (ValidationError, LookupError, ValueError) as exc:
            log.warning("unreadable RPC response %s: %s", correlation_id, exc)
            return
        self._loop.call_soon_threadsafe(self._settle, correlation_id, datum)

    def _positioned_consumer(self) -> Consumer:
        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka.bootstrap,
            "client.id": f"{self.settings.kafka.client_id}-rpc-caller",
            "group.id": f"{self.settings.kafka.client_id}-rpc-caller-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False, "enable.partition.eof": False, "logger": LIBRDKAFKA_LOG,
        })
        try:
            topic = consumer.list_topics(self.responses_topic, timeout=10).topics.get(self.responses_topic)
            if topic is None or topic.error is not None or not topic.partitions:
                raise RpcCallError(f"topic {self.responses_topic} is missing: run `robostream topics create`")
            positions = []
            for partition in sorted(topic.partitions):
                tp = TopicPartition(self.responses_topic, partition)
                _, end = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                positions.append(TopicPartition(self.responses_topic, partition, end))
            consumer.assign(positions)
        except BaseException:
            consumer.close()
            raise
        return consumer


def _correlation_id(msg: Message) -> str:
    raw = dict(msg.headers() or []).get("correlation_id") or b""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _settle_ready(ready: asyncio.Future[None], error: BaseException | None) -> None:
    if ready.done():
        return
    if error is None:
        ready.set_result(None)
    else:
        ready.set_exception(error)


def _reply(robot_id: str, method: str, correlation_id: str, datum: dict[str, Any],
           elapsed_s: float) -> RpcReply:
    raw = datum.get("result")
    result = msgpack.unpackb(raw, raw=False) if isinstance(raw, bytes) else None
    error = datum.get("error")
    return RpcReply(robot_id=robot_id, method=method, correlation_id=correlation_id,
                    status=datum.get("status") or "error", result=result,
                    error=RpcErrorBody(**error) if isinstance(error, dict) else None,
                    elapsed_ms=round(elapsed_s * 1000, 1))
