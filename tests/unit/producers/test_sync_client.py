"""The blocking client: sends from plain threads are acked in seq order, ``send`` never waits for the
network or the SDK's thread, bad payloads raise in the caller, flush/close tell what is unacked.

The gateway here is the scripted in-memory connection of the protocol tests, or a socket that
never answers; the integration tests run the same client against the real gateway and Kafka.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from robostream_sdk import ClientOptions, FlushResult, Spool, SyncRobotClient, ValidationError
from tests.unit.producers.test_client_protocol import ScriptedGateway, log_line


def options(tmp_path: Path, **overrides: Any) -> ClientOptions:
    return ClientOptions(spool_dir=tmp_path, max_delay_s=0.01, backoff_initial_s=0.01, backoff_max_s=0.05,
                         **overrides)


def scripted(tmp_path: Path, gateway: ScriptedGateway, **kwargs: Any) -> SyncRobotClient:
    return SyncRobotClient("ws://scripted", "robot_001", options=options(tmp_path), transport=gateway,
                           **kwargs)


def test_what_a_thread_sends_is_acked_in_seq_order(tmp_path: Path) -> None:
    gateway = ScriptedGateway()
    with scripted(tmp_path, gateway) as client:
        client.start_session()
        seqs = [client.send("log", log_line(i)) for i in range(250)]
        result = client.flush(5)
        assert result == FlushResult(0, 0) and result.drained and result
        assert client.counters.acked == 250 and client.counters.lost == 0
    assert seqs == list(range(250)) and gateway.seqs() == seqs
    assert gateway.controls[-1]["event"]["kind"] == "end"


def test_several_threads_sending_at_once_get_distinct_seqs_delivered_in_order(tmp_path: Path) -> None:
    gateway = ScriptedGateway()
    returned: list[int] = []
    with scripted(tmp_path, gateway) as client:
        client.start_session()

        def control_loop() -> None:
            returned.extend(client.send("log", log_line(i)) for i in range(100))

        threads = [threading.Thread(target=control_loop) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(5)
    assert sorted(returned) == list(range(400))
    assert gateway.seqs() == list(range(400))  # the order the seqs were handed out in


def test_a_payload_that_breaks_the_contract_raises_in_the_callers_thread(tmp_path: Path) -> None:
    gateway = ScriptedGateway()
    with scripted(tmp_path, gateway) as client:
        client.start_session()
        with pytest.raises(ValidationError):
            client.send("log", {"level": "loud", "logger": "x", "message": "y"})
        assert client.send("log", log_line(0)) == 0  # the refused one took no seq
        assert client.flush(5)
        assert client.counters.created == 1
    assert gateway.seqs() == [0]


def test_send_without_a_session_or_after_close_raises(tmp_path: Path) -> None:
    client = scripted(tmp_path, ScriptedGateway())
    with pytest.raises(RuntimeError, match="no session"):
        client.send("log", log_line(0))
    client.start_session()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.send("log", log_line(1))
    assert client.close() == FlushResult(0, 0)


def test_a_slow_callback_on_the_sdk_thread_does_not_slow_down_send(tmp_path: Path) -> None:
    def slow_listener(kind: str, info: dict[str, Any]) -> None:
        if kind == "batch_acked":
            time.sleep(0.3)  # e.g. a user's listener writing to a slow log

    gateway = ScriptedGateway()
    with scripted(tmp_path, gateway, listener=slow_listener) as client:
        client.start_session()
        took = []
        for i in range(40):
            start = time.perf_counter()
            client.send("log", log_line(i))
            took.append(time.perf_counter() - start)
            time.sleep(0.005)  # a 200 Hz control loop
        assert max(took) < 0.1, took
        assert client.flush(30)
    assert gateway.seqs() == list(range(40))


@pytest.fixture
def silent_gateway() -> Iterator[str]:
    """A gateway address that takes TCP connections and never answers (a hung or half-dead host)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)  # never accepted: the WebSocket handshake waits until its timeout
    yield f"ws://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_send_returns_at_once_while_the_gateway_hangs_and_flush_says_what_is_unacked(
    tmp_path: Path, silent_gateway: str
) -> None:
    client = SyncRobotClient(silent_gateway, "robot_001", options=options(tmp_path, open_timeout_s=30))
    client.start_session()
    start = time.perf_counter()
    for i in range(500):
        client.send("log", log_line(i))
    assert time.perf_counter() - start < 2.0
    started = time.monotonic()
    result = client.flush(timeout_s=0.5)
    assert 0.4 <= time.monotonic() - started < 5
    assert not result and result.unacked_messages == 500
    assert result.unacked_batches >= 5  # 100 messages a batch at most
    assert client.state == "connecting" and client.counters.lost == 0
    assert client.close(timeout_s=0.2) == result  # still unacked: it stays in the spool
    assert client.close() == result
    spool = Spool(tmp_path / "robot_001")  # what the next process using this spool finds
    seqs = [seq for e in spool.pending() for seq in range(e.first_seq, e.last_seq + 1)]
    assert seqs == list(range(500)) and spool.pending_messages == 500
    spool.close()
