"""Bad input through the live gateway subprocess: clear errors, dead letters, still serving,
bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgpack
import psutil
import pytest
from confluent_kafka import Consumer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from robostream.config import Settings
from robostream.gateway.framing import MSGPACK_STREAM, encode_length_prefixed
from robostream.topics import dlq_topic
from tests.reliability.badinput import STRATEGIES, Case, corpus, envelope, mp
from tests.reliability.report import FIGURES, BadInputRow
from tests.reliability.sizes import SIZES
from tests.reliability.stack import TOKENS, ReliabilityStack

ROBOT = "robot_001"
HEADERS = {"Authorization": f"Bearer {TOKENS[ROBOT]}", "X-Robot-Id": ROBOT}
RSS_GROWTH_LIMIT = 96 * 1024 * 1024


def base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.gateway.port}"


def dlq_ends(settings: Settings) -> dict[int, int]:
    """The DLQ topic's end offset per partition (where records written from now on will be)."""
    topic = dlq_topic(settings)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "reliability-dlq"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        consumer.close()


def gateway_dead_letters(settings: Settings, since: dict[int, int], expected: int,
                         timeout_s: float = 30) -> int:
    """The gateway's records on the DLQ since ``since``, once ``expected`` arrived (or at the
    deadline). Other parts' dead letters are not counted: the processors dead-letter an accepted
    image they cannot decode, which a fuzzed frame can be."""
    topic = dlq_topic(settings)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "reliability-dlq",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in since.items()])
    deadline = time.monotonic() + timeout_s
    found = 0
    try:
        while found < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                source = dict(msg.headers() or []).get("__error.source") if msg.error() is None else None
                found += isinstance(source, bytes) and source.startswith(b"gateway")
        return found
    finally:
        consumer.close()


class RssWatch:
    """Samples the gateway's resident memory in a thread; ``peak`` minus ``start`` is the growth."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak - self.start


async def send_frames(settings: Settings, frames: list[bytes], window: int = 200) -> list[dict[str, Any]]:
    """Send ``frames`` on one WebSocket (``window`` unanswered at most); every reply until the acks."""
    replies: list[dict[str, Any]] = []
    url = f"ws://127.0.0.1:{settings.gateway.port}/v1/stream?format=msgpack"
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=HEADERS) as ws:
        acks = 0
        for start in range(0, len(frames), window):
            chunk = frames[start:start + window]
            for frame in chunk:
                await ws.send_bytes(frame)
            while acks < start + len(chunk):
                msg = await ws.receive(timeout=60)
                assert msg.type == aiohttp.WSMsgType.BINARY, f"gateway closed: {msg.type} {msg.data}"
                reply = msgpack.unpackb(msg.data, raw=False)
                replies.append(reply)
                acks += reply.get("type") == "ack"
    return replies


async def healthy(settings: Settings) -> bool:
    async with aiohttp.ClientSession() as session, session.get(
            f"{base_url(settings)}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return resp.status == 200


def live_cases(count: int) -> list[Case]:
    """``count`` generated cases, spread over every category (hypothesis, no shrinking)."""
    cases: list[Case] = []
    per = max(1, math.ceil(count / len(STRATEGIES) / 50))
    for make in STRATEGIES.values():
        @settings(max_examples=per, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(make(), min_size=50, max_size=50))
        def draw(found: list[Case]) -> None:
            cases.extend(found)

        draw()
    return cases


def tally(cases: list[Case], replies: list[dict[str, Any]]) -> tuple[Counter[str], int, int]:
    """Codes of the nacks, how many nacks said the frame is on the DLQ, how many were rejected."""
    nacks = [r for r in replies if r["type"] == "nack"]
    acks = [r for r in replies if r["type"] == "ack"]
    assert len(acks) == len(cases), "every frame gets exactly one ack"
    for nack in nacks:
        assert nack["message"] and not nack["retriable"], nack
    return Counter(n["code"] for n in nacks), sum(n["dlq"] for n in nacks), len(nacks)


@pytest.mark.timeout(600)
async def test_bad_frames_get_nacks_and_dead_letters_and_the_gateway_keeps_serving(
    rel_stack: ReliabilityStack, rel_settings: Settings
) -> None:
    cases = corpus() + live_cases(SIZES.live_fuzz_cases)
    before = dlq_ends(rel_settings)
    rss = RssWatch(rel_stack.pid("gateway"))
    replies = await send_frames(rel_settings, [c.frame for c in cases])
    growth = rss.stop()
    codes, on_dlq, rejected = tally(cases, replies)
    landed_dlq = await asyncio.to_thread(gateway_dead_letters, rel_settings, before, on_dlq)
    FIGURES.bad_input.append(BadInputRow(
        "corpus + generated (all categories)", "live gateway (WebSocket)", len(cases), rejected,
        landed_dlq, dict(codes), f"gateway RSS grew {growth / 2**20:.0f} MiB; /healthz 200 after"))
    assert await healthy(rel_settings)
    strict = [c for c in cases if c.codes and c.category != "wrong types"]
    assert rejected >= len(strict), f"{rejected} nacks for {len(strict)} certainly bad frames"
    assert landed_dlq == on_dlq >= len(strict), "every rejected frame is on the DLQ"
    assert growth < RSS_GROWTH_LIMIT, f"gateway RSS grew {growth / 2**20:.0f} MiB"


async def _huge_body(size: int) -> AsyncIterator[bytes]:
    yield size.to_bytes(4, "big")
    chunk = bytes(1024 * 1024)
    left = size
    while left:
        piece = chunk[:min(left, len(chunk))]
        left -= len(piece)
        yield piece
    yield encode_length_prefixed(mp([envelope("log", 1, session_id="s-after-huge")]))


@pytest.mark.timeout(300)
async def test_a_100_mb_frame_is_refused_without_buffering_and_the_next_frame_lands(
    rel_stack: ReliabilityStack, rel_settings: Settings
) -> None:
    size = SIZES.big_frame_bytes
    before = dlq_ends(rel_settings)
    rss = RssWatch(rel_stack.pid("gateway"))
    async with aiohttp.ClientSession() as session, session.post(
        f"{base_url(rel_settings)}/v1/ingest", data=_huge_body(size),
        headers={**HEADERS, "Content-Type": MSGPACK_STREAM},
        timeout=aiohttp.ClientTimeout(total=240),
    ) as resp:
        raw = await resp.read()
        status = resp.status
    growth = rss.stop()
    from tests.integration.gateway.clients import parse_stream

    replies = parse_stream(raw, "msgpack", MSGPACK_STREAM)
    nacks = [r for r in replies if r["type"] == "nack"]
    acks = [r for r in replies if r["type"] == "ack"]
    dead = await asyncio.to_thread(gateway_dead_letters, rel_settings, before, len(nacks))
    FIGURES.bad_input.append(BadInputRow(
        f"one {size / 2**20:.0f} MiB frame (HTTP stream)", "live gateway (HTTPS path, plain)", 1,
        len(nacks), dead, dict(Counter(n["code"] for n in nacks)),
        f"gateway RSS grew {growth / 2**20:.0f} MiB; the next frame was acked"))
    assert status == 200
    assert [n["code"] for n in nacks] == ["too_large"] and "max_frame_bytes" in nacks[0]["message"]
    assert [a["count"] for a in acks] == [0, 1], "the frame after the huge one still lands"
    assert growth < RSS_GROWTH_LIMIT, f"gateway RSS grew {growth / 2**20:.0f} MiB for a refused frame"


@pytest.mark.timeout(300)
async def test_slowloris_connections_do_not_stop_the_gateway(
    rel_stack: ReliabilityStack, rel_settings: Settings
) -> None:
    port = rel_settings.gateway.port
    idle = rel_settings.gateway.idle_timeout_s
    header_s = rel_settings.gateway.header_timeout_s
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    # WebSockets that upgrade and then say nothing (the idle timeout's case)
    session = aiohttp.ClientSession()
    silent = [await session.ws_connect(f"ws://127.0.0.1:{port}/v1/stream", headers=HEADERS)
              for _ in range(3)]
    served = 0
    started = time.monotonic()
    while time.monotonic() - started < max(idle, header_s) + 3:
        for sock in slow:
            with contextlib.suppress(OSError):  # cut at gateway.header_timeout_s: 408, closed
                sock.sendall(b"X")  # one header byte at a time, never finishing
        assert await healthy(rel_settings), "the gateway stopped answering during the slowloris"
        served += 1
        await asyncio.sleep(1)
    closes = [await closed_with(ws) for ws in silent]
    await session.close()
    ends = Counter(server_end(sock) for sock in slow)
    cut = 50 - ends[None]
    FIGURES.bad_input.append(BadInputRow(
        "slowloris: 50 trickling HTTP requests + 3 silent WebSockets", "live gateway", 53,
        3 + ends["408"], None,
        {"idle_timeout (4408)": sum(code == 4408 for code, _ in closes),
         "request_timeout (HTTP 408)": ends["408"]},
        f"/healthz answered {served} times meanwhile; {cut} of 50 trickling requests cut by the server "
        f"at gateway.header_timeout_s ({header_s:.0f} s), {ends['408']} of them with a 408"))
    assert [code for code, _ in closes] == [4408] * 3, "silent WebSockets close at gateway.idle_timeout_s"
    assert cut == 50, "trickling requests are cut at gateway.header_timeout_s"
    assert all(errors == ["idle_timeout"] for _, errors in closes), closes


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, list[str]]:
    """The close code of a WebSocket and the codes of the error frames before it."""
    errors: list[str] = []
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.BINARY:
            errors.append(msgpack.unpackb(msg.data, raw=False).get("code"))
            continue
        return ws.close_code, errors


def server_end(sock: socket.socket) -> str | None:
    """How the server ended a half-sent request: ``"408"`` (answered 408, then closed),
    ``"closed"`` (closed without an answer) or ``None`` (still waiting for the rest)."""
    sock.settimeout(0.2)
    try:
        data = sock.recv(1024)
        return "408" if data.startswith(b"HTTP/1.1 408") else "closed"
    except ConnectionResetError:  # closed, and our later bytes were refused
        return "closed"
    except (TimeoutError, OSError):
        return None
    finally:
        sock.close()
