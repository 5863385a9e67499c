"""Test clients: a simulated robot on a WebSocket, an HTTP streaming robot, and a topic reader."""

from __future__ import annotations

import asyncio
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

import aiohttp
import msgpack
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from robostream.gateway import MSGPACK_STREAM, NDJSON, encode_length_prefixed
from robostream.schemas import DataType, Envelope, build_envelope, encode_frame
from robostream.schemas.examples import example_payload

T = TypeVar("T")

#: Robots of the gateway tests and their tokens.
ROBOTS = {"robot_a": "token-a-0123456789", "robot_b": "token-b-0123456789", "robot_c": "token-c-0123456789"}


def envelopes(
    robot_id: str, session_id: str, data_types: Iterable[DataType], first_seq: int = 0
) -> list[Envelope]:
    """One example envelope per data type, seqs counting up from ``first_seq``."""
    return [
        build_envelope(
            data_type, example_payload(data_type), robot_id=robot_id, session_id=session_id, seq=first_seq + i
        )
        for i, data_type in enumerate(data_types)
    ]


def session() -> str:
    """A session id no other test uses."""
    return f"s-{uuid.uuid4().hex[:12]}"


def decode(data: bytes | str) -> Any:
    return orjson.loads(data) if isinstance(data, str) else msgpack.unpackb(data, raw=False)


class LoopThread:
    """An event loop running in a daemon thread; ``call`` runs a coroutine on it and waits."""

    def __init__(self, name: str = "gateway-test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ClosedError(Exception):
    """The gateway closed the WebSocket: ``code`` and ``reason`` of its close frame."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class WsRobot:
    """A robot on ``WS /v1/stream``, with a blocking API (aiohttp on its own loop thread)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        ssl_context: ssl.SSLContext | None,
        *,
        fmt: str = "msgpack",
        headers: dict[str, str] | None = None,
        open_timeout: float = 30,
    ) -> None:
        extra = dict(headers or {})
        if token is not None:
            extra["Authorization"] = f"Bearer {token}"
        self.fmt = fmt
        self.seen: list[dict[str, Any]] = []
        self._thread = LoopThread("ws-robot")
        try:
            self._session, self.ws = self._thread.call(
                self._open(f"{url}?format={fmt}", extra, ssl_context), open_timeout + 5
            )
        except BaseException:
            self._thread.close()
            raise

    @staticmethod
    async def _open(
        url: str, headers: dict[str, str], ssl_context: ssl.SSLContext | None
    ) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            ws = await session.ws_connect(url, headers=headers, ssl=ssl_context or False, max_msg_size=0)
        except BaseException:
            await session.close()
            raise
        return session, ws

    def send(self, data: bytes | str) -> None:
        coro = self.ws.send_str(data) if isinstance(data, str) else self.ws.send_bytes(data)
        self._thread.call(coro)

    def send_batch(self, batch: list[Envelope]) -> None:
        frame = encode_frame(batch, "json" if self.fmt == "json" else "msgpack")
        self.send(frame.decode() if self.fmt == "json" else frame)

    def recv(self, timeout: float = 20) -> dict[str, Any]:
        """The next message; raises :class:`ClosedError` when the gateway closed the connection."""
        msg = self._thread.call(self.ws.receive(timeout), timeout + 5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            raise ClosedError(self.ws.close_code, msg.extra or "")
        message: dict[str, Any] = decode(msg.data)
        self.seen.append(message)
        return message

    def until(self, kind: str, timeout: float = 30) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read until a message of type ``kind``; returns it and what came before it."""
        before: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.1, deadline - time.monotonic()))
            if message["type"] == kind:
                return message, before
            before.append(message)

    def ack(self, timeout: float = 30) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The next ack and the nacks (and other messages) before it."""
        return self.until("ack", timeout)

    def observe(self, probe: Callable[[], T]) -> Callable[[float], tuple[dict[str, Any], T]]:
        """Receive in the background from now on, calling ``probe()`` the moment each message
        arrives (on the loop that reads the socket, before the next one is read).

        Returns ``next(timeout)``: the next message with what ``probe`` returned as it arrived.
        Use instead of :meth:`recv` (messages that were already waiting are not seen by both).
        """
        arrived: queue.Queue[tuple[dict[str, Any], T] | BaseException] = queue.Queue()

        async def record() -> None:
            try:
                while True:
                    msg = await self.ws.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                    aiohttp.WSMsgType.CLOSED):
                        raise ClosedError(self.ws.close_code, msg.extra or "")
                    seen = probe()
                    message: dict[str, Any] = decode(msg.data)
                    self.seen.append(message)
                    arrived.put((message, seen))
            except BaseException as exc:  # handed to the reader
                arrived.put(exc)

        async def start() -> None:
            self._observer = asyncio.ensure_future(record())

        self._thread.call(start())

        def next_message(timeout: float = 30) -> tuple[dict[str, Any], T]:
            item = arrived.get(timeout=timeout)
            if isinstance(item, BaseException):
                raise item
            return item

        return next_message

    def close(self) -> None:
        try:
            self._thread.call(self._close(), 30)
        finally:
            self._thread.close()

    async def _close(self) -> None:
        observer = getattr(self, "_observer", None)
        if observer is not None:
            observer.cancel()
        await self.ws.close()
        await self._session.close()


async def http_ingest(
    url: str,
    token: str,
    frames: list[bytes],
    fmt: str,
    ssl_context: ssl.SSLContext,
    *,
    pause_s: float = 0.0,
    probe: Callable[[], Any] | None = None,
    probed: list[Any] | None = None,
) -> tuple[int, list[dict[str, Any]], dict[str, str]]:
    """POST frames as a streaming body; returns the status, the messages streamed back, the headers.

    With ``probe``, ``probe()`` is called the moment each piece of the answer arrives, before it
    is read further, and ``probed`` gets, per message returned, what it returned when the end of
    that message arrived.
    """
    content_type = MSGPACK_STREAM if fmt == "msgpack" else NDJSON

    async def body() -> Any:
        for frame in frames:
            yield encode_length_prefixed(frame) if fmt == "msgpack" else frame + b"\n"
            if pause_s:
                await asyncio.sleep(pause_s)

    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            f"{url}/v1/ingest",
            data=body(),
            headers=headers,
            ssl=ssl_context,
            chunked=True,
        ) as resp,
    ):
        if probe is None:
            raw = await resp.read()
            return resp.status, parse_stream(raw, fmt, resp.content_type), dict(resp.headers)
        raw, arrivals = b"", []
        async for chunk in resp.content.iter_any():
            seen = probe()
            raw += chunk
            arrivals.append((len(raw), seen))
        messages = parse_stream(raw, fmt, resp.content_type)
        if probed is not None:
            for end in message_ends(raw, fmt, resp.content_type):
                probed.append(next(seen for size, seen in arrivals if size >= end))
        return resp.status, messages, dict(resp.headers)


def message_ends(raw: bytes, fmt: str, content_type: str) -> list[int]:
    """Where each message of an ack stream ends in ``raw`` (as :func:`parse_stream` splits it)."""
    if content_type == "application/json":
        return [len(raw)]
    ends, pos = [], 0
    if fmt == "json":
        for line in raw.splitlines(keepends=True):
            pos += len(line)
            if line.strip():
                ends.append(pos)
        return ends
    while pos < len(raw):
        pos += 4 + int.from_bytes(raw[pos : pos + 4], "big")
        ends.append(pos)
    return ends


def parse_stream(raw: bytes, fmt: str, content_type: str) -> list[dict[str, Any]]:
    """Messages of an ack stream (or the one JSON error of a refusal)."""
    if content_type == "application/json":
        return [orjson.loads(raw)]
    if fmt == "json":
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    out, pos = [], 0
    while pos < len(raw):
        size = int.from_bytes(raw[pos : pos + 4], "big")
        out.append(msgpack.unpackb(raw[pos + 4 : pos + 4 + size], raw=False))
        pos += 4 + size
    return out


def read_topics(
    bootstrap: str, topics: str | list[str], until: Callable[[list[Message]], bool], timeout: float = 20
) -> list[Message]:
    """Every record of ``topics`` from the beginning, until ``until(records)`` or the timeout."""
    names = [topics] if isinstance(topics, str) else topics
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"gw-test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10).topics
        consumer.assign(
            [TopicPartition(name, p, OFFSET_BEGINNING) for name in names for p in metadata[name].partitions]
        )
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while not until(records) and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.3):
                if msg.error() is None:
                    records.append(msg)
        return records
    finally:
        consumer.close()


class EndOffsets:
    """The end offsets (high watermarks) of every partition of ``topics``, read on demand.

    A record is in Kafka (acknowledged by every in-sync replica) exactly when its offset is below
    its partition's end offset. :meth:`snapshot` is one ListOffsets request per broker (a few
    ms) on a connection opened beforehand, so called right when an ack arrives it shows what
    Kafka held at that moment; anything written later can only be missing from it.
    """

    def __init__(self, bootstrap: str, topics: Iterable[str]) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        metadata = self._admin.list_topics(timeout=10).topics
        self._partitions = [TopicPartition(t, p) for t in topics for p in metadata[t].partitions]
        self.snapshot()  # connect now, not when the ack comes

    def snapshot(self) -> dict[tuple[str, int], int]:
        """``(topic, partition) -> end offset`` now."""
        futures = self._admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in self._partitions}, request_timeout=10
        )
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}


def in_kafka_at(end_offsets: dict[tuple[str, int], int], msg: Message) -> bool:
    """Whether ``msg`` was in Kafka when ``end_offsets`` was taken."""
    offset = msg.offset()
    return offset is not None and offset < end_offsets[(msg.topic() or "", msg.partition() or 0)]


def headers_of(msg: Message) -> dict[str, str]:
    return {k: _text(v) for k, v in header_list(msg)}


def header_list(msg: Message) -> list[tuple[str, bytes | None]]:
    """A record's headers as a list of (name, bytes)."""
    raw = msg.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    return [(str(k), v.encode() if isinstance(v, str) else v) for k, v in pairs]


def value_of(msg: Message) -> bytes:
    value = msg.value()
    assert isinstance(value, bytes)
    return value


def _text(value: bytes | None) -> str:
    return (value or b"").decode()


def with_session(session_id: str) -> Callable[[Message], bool]:
    """Records of one session (by key)."""
    return lambda msg: (msg.key() or b"").endswith(f"/{session_id}".encode())
