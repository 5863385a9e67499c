"""Real-time stream: what a simulated robot sends reaches WebSocket clients through the Redis sink
and pub/sub, and a client that stops reading never slows the others."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from robostream.config import Settings
from robostream.schemas import DataType, build_envelope
from robostream.schemas.examples import example_payload
from robostream.sinks.points import Telemetry, points
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, now_us


async def receive(ws: aiohttp.ClientWebSocketResponse, wait_s: float = 5.0) -> dict[str, Any]:
    message = await ws.receive(timeout=wait_s)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    body: dict[str, Any] = orjson.loads(message.data)
    return body


async def land_in_thread(landing: Landing, records: list[Any], to: tuple[str, ...] = ("redis",)) -> None:
    await asyncio.to_thread(landing.telemetry, records, to)


async def test_a_point_sent_by_a_simulated_robot_reaches_a_websocket_client(
        api: RunningApi, landing: Landing, ids: dict[str, str]) -> None:
    robot = SimulatedRobot(ids["robot"], ids["session"], now_us())
    landing.telemetry(robot.records(5), to=("redis",))  # already in the ring: the snapshot
    url = f"{api.ws_url}/v1/live?robot={ids['robot']}&session={ids['session']}&types=time_series"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        hello = await receive(ws)
        assert hello["type"] == "hello" and hello["types"] == ["time_series"]
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot" and len(snapshot["points"]) == 50
        record = robot.next_record()
        await land_in_thread(landing, [record])
        message = await receive(ws)
    expected = [p for b in Telemetry.from_columns(record).buckets for p in points(b)]
    assert message["type"] == "time_series" and message["robot_id"] == ids["robot"]
    assert message["points"] == expected  # the robot's 10 samples, every metric
    metrics = set(message["points"][0]["values"])
    assert {"pose.position.x", "joints.angle.3", "imu.angular_velocity.z"} <= metrics
    # how fast: bench/api.py's live run (robot -> WS client p50/p99)


async def test_frames_and_stats_arrive_on_their_types(api: RunningApi, landing: Landing,
                                                      ids: dict[str, str]) -> None:
    url = f"{api.ws_url}/v1/live?robot={ids['robot']}&session={ids['session']}&types=images,stats"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await receive(ws))["types"] == ["images", "stats"]  # no snapshot without time_series
        await asyncio.to_thread(landing.image, ids["robot"], ids["session"], now_us(), seq=1,
                                to=("s3", "redis"))
        frame = await receive(ws)
        records = SimulatedRobot(ids["robot"], ids["session"], now_us() - 5_000_000).records(3)
        await asyncio.to_thread(landing.stats, records, to=("redis",))
        stats = await receive(ws)
    assert frame["type"] == "frame" and frame["camera_id"] == "front"
    assert frame["urls"]["rgb"].startswith("http")
    assert stats["type"] == "stats" and stats["resolution"] in ("1m", "1h") and stats["count"] >= 1


async def test_a_robots_log_lines_arrive_on_the_log_type(api: RunningApi, landing: Landing,
                                                         ids: dict[str, str]) -> None:
    url = f"{api.ws_url}/v1/live?robot={ids['robot']}&session={ids['session']}&types=log"
    payload = {**example_payload(DataType.LOG), "message": "gripper torque limit reached"}
    line = build_envelope(DataType.LOG, payload, robot_id=ids["robot"], session_id=ids["session"], seq=7,
                          timestamp=now_us() / 1e6)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await receive(ws))["types"] == ["log"]
        await asyncio.to_thread(landing.write, [line], ("redis",))
        message = await receive(ws)
    assert message == {"type": "log", "robot_id": ids["robot"], "session_id": ids["session"], "seq": 7,
                       "timestamp_us": line.timestamp_us, "level": payload["level"],
                       "logger": payload["logger"], "message": "gripper torque limit reached",
                       "attributes": payload["attributes"]}


# -- a slow client ---------------------------------------------------------------------------------


class StalledClient:
    """A WebSocket client that completes the handshake and then never reads (tiny receive buffer)."""

    def __init__(self, url: str, path: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buffer = b""

    def messages(self, quiet_s: float = 2.0) -> Iterator[dict[str, Any]]:
        """Now read: every text message the server has for us (until it is quiet ``quiet_s``)."""
        self.sock.settimeout(quiet_s)
        while True:
            while (frame := self._frame()) is None:
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    return
                self.buffer += chunk
            yield orjson.loads(frame)

    def _frame(self) -> bytes | None:
        data = self.buffer
        if len(data) < 2:
            return None
        length, offset = data[1] & 0x7F, 2
        if length == 126:
            length, offset = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, offset = int.from_bytes(data[2:10], "big"), 10
        if len(data) < offset + length:
            return None
        self.buffer = data[offset + length:]
        return data[offset:offset + length]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def small_queue_api(api_settings: Settings) -> Iterator[RunningApi]:
    settings = api_settings.model_copy(update={"api": api_settings.api.model_copy(
        update={"live_queue_size": 20})})
    with RunningApi(settings) as running:
        yield running


async def test_a_slow_client_does_not_delay_a_fast_one(small_queue_api: RunningApi, landing: Landing,
                                                       ids: dict[str, str]) -> None:
    api = small_queue_api
    path = f"/v1/live?robot={ids['robot']}&session={ids['session']}&types=time_series"
    slow = await asyncio.to_thread(StalledClient, api.url, path)
    robot = SimulatedRobot(ids["robot"], ids["session"], now_us())
    records = robot.records(300)  # 300+ messages of ~8 KB: far more than the slow client's buffers
    messages = [(b.seqs[0], b.indexes[0]) for r in records for b in Telemetry.from_columns(r).buckets]

    def robot_streams() -> None:
        for record in records:
            landing.telemetry([record], to=("redis",))
            time.sleep(0.002)

    async with aiohttp.ClientSession() as http, http.ws_connect(api.ws_url + path) as fast:
        await receive(fast)  # hello
        await receive(fast)  # snapshot
        streaming = asyncio.create_task(asyncio.to_thread(robot_streams))
        received = []
        while len(received) < len(messages):  # a record across a minute is two messages
            message = await receive(fast, wait_s=10)
            assert message["type"] == "time_series", message  # never a "dropped" notice
            first = message["points"][0]
            received.append((first["seq"], first["i"]))
        await streaming
    # every message, in order, while the slow client had read nothing (how fast: bench/api.py's
    # live run, which has a stalled client too)
    assert received == messages
    later = await asyncio.to_thread(lambda: list(slow.messages()))
    slow.close()

    kinds = [m["type"] for m in later]
    assert kinds[:2] == ["hello", "snapshot"]
    dropped = [m for m in later if m["type"] == "dropped"]
    assert dropped and dropped[-1]["total"] > 100  # the slow client was told what it missed
    assert sum(m["count"] for m in dropped) == dropped[-1]["total"]
    seqs = [m["points"][0]["seq"] for m in later if m["type"] == "time_series"]
    assert seqs == sorted(seqs) and seqs[-1] == records[-1].seq  # it kept the newest messages


async def test_many_clients_subscribing_at_once_all_get_their_sessions(
        api: RunningApi, landing: Landing, ids: dict[str, str]) -> None:
    """A dashboard of a dozen robots opens its sockets together; each gets its own robot's points."""
    robots = [SimulatedRobot(f"{ids['robot']}-{i}", ids["session"], now_us()) for i in range(12)]

    async def watch(http: aiohttp.ClientSession, robot: SimulatedRobot) -> list[str]:
        url = f"{api.ws_url}/v1/live?robot={robot.robot_id}&session={robot.session_id}&types=time_series"
        async with http.ws_connect(url) as ws:
            assert (await receive(ws, 15.0))["type"] == "hello"
            assert (await receive(ws, 15.0))["type"] == "snapshot"
            ready.release()
            message = await receive(ws, 15.0)
            return [message["type"], message["robot_id"]]

    ready = asyncio.Semaphore(0)
    async with aiohttp.ClientSession() as http:
        watchers = [asyncio.create_task(watch(http, robot)) for robot in robots]
        for _ in robots:
            await asyncio.wait_for(ready.acquire(), 30)
        await land_in_thread(landing, [robot.next_record() for robot in robots])
        received = await asyncio.gather(*watchers)
    assert received == [["time_series", robot.robot_id] for robot in robots]


async def test_a_record_lands_after_redis_forgot_the_sinks_scripts(
        api: RunningApi, landing: Landing, ids: dict[str, str]) -> None:
    robot = SimulatedRobot(ids["robot"], ids["session"], now_us())
    landing.telemetry(robot.records(1), to=("redis",))
    landing.redis.client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    url = f"{api.ws_url}/v1/live?robot={ids['robot']}&session={ids['session']}&types=time_series"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await receive(ws))["type"] == "hello"
        assert len((await receive(ws))["points"]) == 10  # the snapshot: the first record
        record = robot.next_record()
        await land_in_thread(landing, [record])
        message = await receive(ws)
    assert message["type"] == "time_series"
    assert message["points"] == [p for b in Telemetry.from_columns(record).buckets for p in points(b)]
