"""The SDK's framing on the wire: JSON text frames for metadata-like types and MessagePack binary
frames for the rest on one WebSocket (``auto``, the default), or one forced format.

The robot side is the real client and WebSocket transport; the other end is a small WebSocket
server that records each frame's kind (text or binary) and acks every batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from robostream.schemas import DataType
from robostream.schemas.datatypes import METADATA_TYPES
from robostream.schemas.examples import example_payload
from robostream_sdk import ClientOptions, RobotClient
from robostream_sdk.batcher import Batch, frame_of
from robostream_sdk.spool import Spool
from robostream_sdk.wire import pack_envelope

TEXT_TYPES = {"parameters", "log", "markdown", "json", "yaml", "toml", "csv"}


class RecordingGateway:
    """Accepts robots on ``ws://127.0.0.1:<port>/v1/stream``; keeps (kind, envelopes) per frame."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, list[dict[str, Any]]]] = []
        self.queries: list[str] = []
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.queries.append(ws.request.path)
        number = 0
        async for data in ws:
            if isinstance(data, str):
                message = orjson.loads(data)
                kind = "text"
            else:
                message = msgpack.unpackb(data, raw=False)
                kind = "binary"
            if isinstance(message, dict):  # a control message (session_event)
                continue
            number += 1
            self.frames.append((kind, message))
            ack = {"type": "ack", "batch": number, "seq": message[-1]["seq"], "count": len(message),
                   "rejected": 0}
            json_acks = ws.request.path.endswith("format=json")  # the gateway's: the asked format
            await ws.send(orjson.dumps(ack).decode() if json_acks else msgpack.packb(ack))

    def kinds_by_type(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for kind, envelopes in self.frames:
            for envelope in envelopes:
                out.setdefault(envelope["data_type"], set()).add(kind)
        return out


@contextlib.asynccontextmanager
async def recording_gateway() -> AsyncIterator[RecordingGateway]:
    recorder = RecordingGateway()
    async with serve(recorder.handler, "127.0.0.1", 0, max_size=None) as server:
        recorder.port = next(iter(server.sockets)).getsockname()[1]
        yield recorder


def mixed() -> list[tuple[str, dict[str, Any]]]:
    """Every data type twice, interleaved."""
    return [(str(dt), example_payload(dt)) for _ in range(2) for dt in DataType]


async def stream(tmp_path: Path, **options: Any) -> RecordingGateway:
    opts = ClientOptions(spool_dir=tmp_path, max_delay_s=0.01, **options)
    async with (recording_gateway() as gateway,
                RobotClient(f"ws://127.0.0.1:{gateway.port}", "robot_001", options=opts) as client):
        await client.start_session()
        for data_type, payload in mixed():
            await client.send(data_type, payload)
        assert await client.flush(10)
    return gateway


def test_the_metadata_types_are_the_seeds() -> None:
    assert {str(t) for t in METADATA_TYPES} == TEXT_TYPES


async def test_auto_framing_sends_metadata_as_json_text_and_the_rest_as_messagepack(tmp_path: Path) -> None:
    gateway = await stream(tmp_path)
    kinds = gateway.kinds_by_type()
    assert set(kinds) == {str(dt) for dt in DataType}
    assert {dt: k for dt, k in kinds.items() if dt in TEXT_TYPES} == {dt: {"text"} for dt in TEXT_TYPES}
    assert {dt: k for dt, k in kinds.items() if dt not in TEXT_TYPES} == {
        str(dt): {"binary"} for dt in DataType if str(dt) not in TEXT_TYPES}
    assert {kind for kind, _ in gateway.frames} == {"text", "binary"}
    assert gateway.queries == ["/v1/stream?format=msgpack"]  # one connection; acks in MessagePack
    seqs = sorted(e["seq"] for _, envelopes in gateway.frames for e in envelopes)
    assert seqs == list(range(len(mixed())))  # every envelope once, whatever its frame


@pytest.mark.parametrize(("fmt", "kind"), [("json", "text"), ("msgpack", "binary")])
async def test_a_forced_format_frames_every_batch(tmp_path: Path, fmt: str, kind: str) -> None:
    gateway = await stream(tmp_path, fmt=fmt)
    assert {k for k, _ in gateway.frames} == {kind}
    assert gateway.queries == [f"/v1/stream?format={fmt}"]
    assert sum(len(envelopes) for _, envelopes in gateway.frames) == len(mixed())


async def test_a_spooled_json_batch_is_resent_as_text_after_a_restart(tmp_path: Path) -> None:
    log = pack_envelope({"timestamp": 1_700_000_000_000_000, "robot_id": "robot_001", "session_id": "s-old",
                         "data_type": "log", "seq": 7, "payload": {"level": "info", "message": "kept"}})
    spool = Spool(tmp_path / "robot_001")
    spool.append(Batch("s-old", frame_of([log]), 1, 1, 7, 7, "json"))
    spool.close()
    opts = ClientOptions(spool_dir=tmp_path, max_delay_s=0.01)
    async with (recording_gateway() as gateway,
                RobotClient(f"ws://127.0.0.1:{gateway.port}", "robot_001", options=opts) as client):
        assert await client.flush(10)
    assert [(kind, [e["seq"] for e in envelopes]) for kind, envelopes in gateway.frames] == [("text", [7])]
