"""The client against a scripted gateway connection: acks, nacks, slow_down, reconnects, RPC.

The connection is an in-memory stand-in for the transport (the real gateway is in the
integration tests); everything else (batcher, spool on disk, sender, counters) is real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from robostream_sdk import ClientOptions, RobotClient, RpcError
from robostream_sdk.transport import (
    Connection,
    ConnectionLostError,
    GatewayRefusedError,
    Transport,
)
from robostream_sdk.wire import FrameFormat

Reply = Callable[[int, list[dict[str, Any]]], list[dict[str, Any]]]


def ack_all(number: int, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "ack", "batch": number, "seq": envelopes[-1]["seq"], "count": len(envelopes),
             "rejected": 0}]


class ScriptedConnection(Connection):
    kind = "ws"
    supports_control = True

    def __init__(self, gateway: ScriptedGateway) -> None:
        self.gateway = gateway
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.number = 0
        self.closed = False

    async def send_batch(self, frame: bytes, fmt: FrameFormat = "msgpack") -> None:
        if self.closed:
            raise ConnectionLostError(None, "closed")
        self.number += 1
        envelopes = msgpack.unpackb(frame, raw=False)
        self.gateway.frames.append((self.number, envelopes))
        self.gateway.formats.append(fmt)
        for message in self.gateway.reply(self.number, envelopes):
            self.inbox.put_nowait(message)
        if self.gateway.drop_after is not None and len(self.gateway.frames) >= self.gateway.drop_after:
            self.gateway.drop_after = None
            self.inbox.put_nowait(None)

    async def send_control(self, message: dict[str, Any]) -> None:
        self.gateway.controls.append(message)

    async def receive(self) -> dict[str, Any]:
        message = await self.inbox.get()
        if message is None:
            self.closed = True
            raise ConnectionLostError(1006, "dropped")
        return message

    async def close(self) -> None:
        self.closed = True


class ScriptedGateway(Transport):
    kind = "ws"
    url = "ws://scripted/v1/stream"

    def __init__(self, reply: Reply = ack_all) -> None:
        self.reply = reply
        self.frames: list[tuple[int, list[dict[str, Any]]]] = []
        self.formats: list[FrameFormat] = []  # of each batch frame, as the client asked
        self.controls: list[dict[str, Any]] = []
        self.connections: list[ScriptedConnection] = []
        self.refuse: GatewayRefusedError | None = None
        self.drop_after: int | None = None

    async def connect(self) -> Connection:
        if self.refuse is not None:
            raise self.refuse
        conn = ScriptedConnection(self)
        self.connections.append(conn)
        return conn

    def seqs(self) -> list[int]:
        return [e["seq"] for _, envelopes in self.frames for e in envelopes]


def make_client(tmp_path: Path, gateway: ScriptedGateway, **kwargs: Any) -> RobotClient:
    options = ClientOptions(spool_dir=tmp_path, max_delay_s=0.01, backoff_initial_s=0.01,
                            backoff_max_s=0.05)
    return RobotClient("ws://scripted", "robot_001", options=options, transport=gateway, **kwargs)


def log_line(i: int) -> dict[str, Any]:
    return {"level": "info", "logger": "test", "message": f"line {i}"}


async def test_every_batch_is_acked_and_counted(tmp_path: Path) -> None:
    gateway = ScriptedGateway()
    async with make_client(tmp_path, gateway) as client:
        await client.start_session()
        for i in range(250):
            await client.send("log", log_line(i))
        assert await client.flush(5)
        counters = client.counters
        assert (counters.created, counters.sent, counters.acked, counters.resent) == (250, 250, 250, 0)
        assert counters.spooled == 0 and counters.lost == 0 and counters.dropped == 0
        assert gateway.seqs() == list(range(250))
        assert [len(e) for _, e in gateway.frames][:2] == [100, 100]  # max_messages
    assert gateway.controls[0]["type"] == "session_event" and gateway.controls[0]["event"]["kind"] == "start"
    assert gateway.controls[-1]["event"]["kind"] == "end"


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def test_an_idle_link_sends_at_once_and_a_busy_one_coalesces_until_the_ack(tmp_path: Path) -> None:
    gateway = ScriptedGateway(lambda number, envelopes: [])  # acks are released by hand below
    options = ClientOptions(spool_dir=tmp_path, max_delay_s=30.0)  # no timer could send in this test
    async with RobotClient("ws://scripted", "robot_001", options=options, transport=gateway) as client:
        await client.start_session()
        await wait_until(lambda: client.connected)
        await client.send("log", log_line(0))
        await wait_until(lambda: len(gateway.frames) == 1)  # idle: out at once, alone
        for i in range(1, 6):
            await client.send("log", log_line(i))
        await asyncio.sleep(0.05)
        assert [len(e) for _, e in gateway.frames] == [1]  # in flight: the next five wait together
        conn = gateway.connections[-1]
        conn.inbox.put_nowait(ack_all(1, gateway.frames[0][1])[0])
        await wait_until(lambda: len(gateway.frames) == 2)  # the ack releases them, no timer
        assert [len(e) for _, e in gateway.frames] == [1, 5]
        conn.inbox.put_nowait(ack_all(2, gateway.frames[1][1])[0])
        assert await client.flush(5)
        assert gateway.seqs() == list(range(6)) and client.counters.acked == 6


async def test_retriable_nacks_are_sent_again_and_others_counted_rejected(tmp_path: Path) -> None:
    def reply(number: int, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if number != 1:
            return ack_all(number, envelopes)
        return [
            {"type": "nack", "batch": 1, "index": 1, "seq": 1, "code": "kafka_error", "message": "later",
             "retriable": True, "dlq": False},
            {"type": "nack", "batch": 1, "index": 2, "seq": 2, "code": "invalid_field", "message": "bad",
             "retriable": False, "dlq": True},
            {"type": "ack", "batch": 1, "seq": 3, "count": 2, "rejected": 2},
        ]

    gateway = ScriptedGateway(reply)
    async with make_client(tmp_path, gateway) as client:
        await client.start_session()
        for i in range(4):
            await client.send("log", log_line(i))
        assert await client.flush(5)
        stats = await client.end_session()
    assert gateway.seqs() == [0, 1, 2, 3, 1]
    counters = client.counters
    assert (counters.acked, counters.rejected, counters.resent, counters.lost) == (3, 1, 1, 0)
    assert stats.rejected_records == 1


async def test_a_lost_connection_resends_what_was_not_acked(tmp_path: Path) -> None:
    unanswered: list[int] = []

    def reply(number: int, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(gateway.connections) == 1 and number >= 2:
            unanswered.append(number)
            return []  # no ack before the connection drops
        return ack_all(number, envelopes)

    gateway = ScriptedGateway(reply)
    gateway.drop_after = 3
    async with make_client(tmp_path, gateway) as client:
        await client.start_session()
        for i in range(300):
            await client.send("log", log_line(i))
        assert await client.flush(5)
        counters = client.counters
    assert len(gateway.connections) == 2 and unanswered
    assert sorted(set(gateway.seqs())) == list(range(300))
    assert counters.acked == 300 and counters.resent >= 100 and counters.lost == 0
    assert counters.connects == 2 and counters.disconnects >= 1


async def test_slow_down_pauses_sending(tmp_path: Path) -> None:
    sent_at: list[float] = []

    def reply(number: int, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sent_at.append(time.monotonic())
        pause = [{"type": "slow_down", "retry_after_ms": 300, "in_flight_bytes": 1, "limit_bytes": 1,
                  "scope": "connection"}] if number == 1 else []
        return pause + ack_all(number, envelopes)

    gateway = ScriptedGateway(reply)
    async with make_client(tmp_path, gateway) as client:
        await client.start_session()
        for i in range(100):
            await client.send("log", log_line(i))
        await wait_until(lambda: client.counters.slow_downs == 1)  # the gateway's pause reached it
        for i in range(100, 200):
            await client.send("log", log_line(i))
        assert await client.flush(5)
        assert client.counters.slow_downs == 1
    assert sent_at[1] - sent_at[0] >= 0.25


async def test_a_refused_token_is_retried_and_reported(tmp_path: Path) -> None:
    gateway = ScriptedGateway()
    gateway.refuse = GatewayRefusedError(401, "invalid token")
    client = make_client(tmp_path, gateway)
    await client.start_session()
    await client.send("log", log_line(0))
    assert not await client.flush(0.3)
    assert client.state in ("refused", "backing_off") and "invalid token" in (client.last_error or "")
    gateway.refuse = None
    assert await client.flush(5)
    await client.close()


async def test_rpc_requests_are_answered(tmp_path: Path) -> None:
    async def handler(method: str, params: Any) -> Any:
        if method == "ping":
            return {"pong": params}
        raise RpcError("unknown_method", method)

    gateway = ScriptedGateway()
    async with make_client(tmp_path, gateway, rpc_handler=handler) as client:
        await client.start_session()
        await client.send("log", log_line(0))
        assert await client.flush(5)
        conn = gateway.connections[-1]
        conn.inbox.put_nowait({"type": "rpc_request", "correlation_id": "c1", "method": "ping", "params": 7,
                               "deadline": time.time() + 5, "session_id": None})
        conn.inbox.put_nowait({"type": "rpc_request", "correlation_id": "c2", "method": "fly", "params": None,
                               "deadline": time.time() + 5, "session_id": None})
        for _ in range(100):
            if len([c for c in gateway.controls if c["type"] == "rpc_response"]) == 2:
                break
            await asyncio.sleep(0.01)
    answers = {c["correlation_id"]: c for c in gateway.controls if c["type"] == "rpc_response"}
    assert answers["c1"]["status"] == "ok" and answers["c1"]["result"] == {"pong": 7}
    assert answers["c2"]["status"] == "error" and answers["c2"]["error"]["code"] == "unknown_method"


async def test_unsent_batches_wait_in_the_spool_for_the_next_process(tmp_path: Path) -> None:
    gateway = ScriptedGateway()
    gateway.refuse = GatewayRefusedError(503, "shutting down", retry_after_s=0.05)
    first = make_client(tmp_path, gateway)
    await first.start_session()
    for i in range(42):
        await first.send("log", log_line(i))
    assert not await first.close(timeout_s=0.2)
    assert first.counters.spooled == 42 and first.counters.lost == 0

    gateway.refuse = None
    second = make_client(tmp_path, gateway)
    await second.start()
    assert second.counters.recovered == 42
    assert await second.flush(5)
    assert second.counters.resent == 42 and second.counters.acked == 42 and second.counters.lost == 0
    await second.close()
    assert gateway.seqs() == list(range(42))


async def test_send_refuses_a_payload_that_breaks_the_contract(tmp_path: Path) -> None:
    from robostream_sdk import ValidationError

    client = make_client(tmp_path, ScriptedGateway())
    await client.start_session()
    with pytest.raises(ValidationError):
        await client.send("log", {"level": "loud", "logger": "x", "message": "y"})
    assert client.counters.created == 0
    await client.close()


def test_the_blocking_client_does_the_same(tmp_path: Path) -> None:
    from robostream_sdk import SyncRobotClient

    gateway = ScriptedGateway()
    options = ClientOptions(spool_dir=tmp_path, max_delay_s=0.01)
    with SyncRobotClient("ws://scripted", "robot_002", options=options, transport=gateway) as client:
        session = client.start_session(session_id="sync-1")
        assert [client.send("log", log_line(i)) for i in range(3)] == [0, 1, 2]
        assert client.flush(5)
        assert client.counters.acked == 3
    assert session == "sync-1" and gateway.seqs() == [0, 1, 2]
