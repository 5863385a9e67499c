"""TelemetryProcessor in process (a recording producer and table): what it sends, and in which order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from robostream.processors.aggregations import SessionWindows
from robostream.processors.columns import TimeSeriesReader
from robostream.processors.outputs import Outputs
from robostream.processors.records import DerivedCodec
from robostream.processors.telemetry import TelemetryProcessor
from robostream.processors.throughput import Throughput
from robostream.schemas import InMemorySchemaResolver, build_envelope, encode_record
from robostream.schemas.examples import time_series_payload


@dataclass
class _Message:
    value: bytes | None
    partition: int
    offset: int
    topic: str = "t"
    key: bytes | None = b""
    headers: Any = None


class _Recorder:
    """Producer and table in one: a log of sends, deliveries and state writes, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.data: dict[bytes, bytes] = {}
        self.states: list[int] = []  # last_seq of each state written
        self.acked: list[Any] = []

    async def send(self, topic: str, key: bytes, value: bytes, headers: Any) -> Any:
        self.log.append(("send", topic))

        async def delivered() -> None:
            await asyncio.sleep(0)
            self.log.append(("delivered", topic))

        return asyncio.ensure_future(delivered())

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.log.append(("state", key.decode()))
        self.data[key] = value
        self.states.append(SessionWindows.load(value[4:], 0).last_seq)

    async def ack(self, messages: list[Any]) -> None:
        self.log.append(("ack", str(len(messages))))
        self.acked += messages

    def list_keys(self) -> list[bytes]:
        return list(self.data)


def _messages(resolver: InMemorySchemaResolver, count: int, sessions: int) -> list[_Message]:
    payload = time_series_payload(10)
    out = []
    for i in range(count):
        envelope = build_envelope("time_series", payload, robot_id="robot_001", session_id=f"s{i % sessions}",
                                  seq=i // sessions, timestamp=1_800_000_000.0 + (i // sessions) * 0.1)
        out.append(_Message(encode_record(envelope, resolver).value, i % sessions, i // sessions))
    return out


def _processor(resolver: InMemorySchemaResolver, recorder: _Recorder, **kwargs: Any) -> TelemetryProcessor:
    outputs = Outputs(recorder.send, DerivedCodec(resolver), "bucketed",
                      {"1s": "s1", "1m": "s1m", "1h": "s1h"}, "frames", "dlq", "test", 8 << 20)
    return TelemetryProcessor(reader=TimeSeriesReader(resolver), resolver=resolver, outputs=outputs,
                              table=recorder, metrics=Throughput("test"), lateness_us=0, idle_s=5.0,
                              **kwargs)


@pytest.mark.parametrize("bucketed", [False, True])
def test_bucketed_output_is_opt_in_and_state_is_written_after_every_output_is_delivered(
    bucketed: bool,
) -> None:
    resolver = InMemorySchemaResolver()
    recorder = _Recorder()
    processor = _processor(resolver, recorder, bucketed=bucketed)
    messages = _messages(resolver, 60, 3)  # 2 s per session: the first 1 s windows close

    async def run() -> None:
        await processor.process(messages, recorder.ack)
        await processor.drain()

    asyncio.run(run())
    assert recorder.acked == messages and recorder.log[-1] == ("ack", "60")
    topics = {topic for kind, topic in recorder.log if kind == "send"}
    assert ("bucketed" in topics) is bucketed
    assert "s1" in topics
    first_state = next(i for i, (kind, _) in enumerate(recorder.log) if kind == "state")
    assert all(kind != "state" for kind, _ in recorder.log[:first_state])
    sends = sum(1 for kind, _ in recorder.log if kind == "send")
    assert sum(1 for kind, _ in recorder.log[:first_state] if kind == "delivered") == sends
    assert sorted(key for kind, key in recorder.log if kind == "state") == [
        "robot_001/s0", "robot_001/s1", "robot_001/s2"]  # one state write per session and batch
    totals = processor.metrics.counters
    assert totals["telemetry_records"] == 60 and totals["telemetry_points"] == 600
    assert (totals["buckets_out"] > 0) is bucketed


def test_batches_fold_ahead_but_states_and_acks_follow_each_batchs_own_delivery_in_order() -> None:
    resolver = InMemorySchemaResolver()
    recorder = _Recorder()
    processor = _processor(resolver, recorder)
    messages = _messages(resolver, 100, 1)  # one session, 10 s: every batch closes 1 s windows
    batches = [messages[i:i + 20] for i in range(0, 100, 20)]

    async def run() -> None:
        for batch in batches:  # no wait for delivery in between
            await processor.process(batch, recorder.ack)
        await processor.drain()

    asyncio.run(run())
    assert recorder.acked == messages
    assert recorder.states == [19, 39, 59, 79, 99]  # each batch's own state, in batch order
    kinds = [kind for kind, _ in recorder.log]
    for n in range(1, 6):  # batch n: its outputs delivered, then its state, then its ack
        state = [i for i, k in enumerate(kinds) if k == "state"][n - 1]
        ack = [i for i, k in enumerate(kinds) if k == "ack"][n - 1]
        assert state < ack
