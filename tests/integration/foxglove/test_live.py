"""``robostream foxglove``: a Foxglove WebSocket client (``foxglove.websocket.v1``) sees a
simulated robot's channels with Foxglove's schemas, and its pose, camera frames, logs and
force/torque samples arrive."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any

import orjson
import pytest
import websockets
from mcap.records import Schema
from mcap_protobuf.decoder import DecoderFactory
from websockets.typing import Subprotocol

from robostream.config import Settings
from robostream.foxglove.service import FoxgloveBridge
from robostream.schemas import DataType, build_envelope
from robostream.schemas.examples import example_payload
from tests.integration.api.helpers import Landing, SimulatedRobot, jpeg, now_us

#: foxglove-sdk 0.30 speaks the Foxglove WebSocket protocol under this subprotocol name (the
#: successor of "foxglove.websocket.v1"; the Foxglove app offers both)
SUBPROTOCOL = "foxglove.sdk.v1"
MESSAGE_DATA = 0x01


class FoxgloveClient:
    """A minimal Foxglove WebSocket client: advertised channels, subscriptions, decoded messages."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.channels: dict[str, dict[str, Any]] = {}  # topic -> advertised channel
        self._subscriptions: dict[int, dict[str, Any]] = {}
        self._decoders = DecoderFactory()

    async def next_message(self, wait_s: float) -> tuple[str, int, Any] | None:
        """The next message of a subscription ``(topic, log time ns, decoded)``; advertisements on
        the way are recorded; None when nothing came within ``wait_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            try:
                frame = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                return None
            if isinstance(frame, str):
                message = orjson.loads(frame)
                if message["op"] == "advertise":
                    self.channels.update({c["topic"]: c for c in message["channels"]})
                continue
            assert frame[0] == MESSAGE_DATA, frame[:1]
            subscription, log_time = struct.unpack_from("<IQ", frame, 1)
            channel = self._subscriptions[subscription]
            if channel["encoding"] == "json":  # its schema is JSON text; a protobuf one is base64
                return channel["topic"], log_time, orjson.loads(frame[13:])
            schema = Schema(id=channel["id"], name=channel["schemaName"], encoding=channel["schemaEncoding"],
                            data=base64.b64decode(channel["schema"]))
            decode = self._decoders.decoder_for(channel["encoding"], schema)
            assert decode is not None, channel
            return channel["topic"], log_time, decode(frame[13:])
        return None

    async def advertised(self, topic: str, wait_s: float = 10.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while topic not in self.channels and loop.time() < deadline:
            await self.next_message(0.2)
        assert topic in self.channels, f"{topic} not advertised; channels: {sorted(self.channels)}"
        return self.channels[topic]

    async def subscribe(self, topic: str) -> None:
        channel = self.channels[topic]
        self._subscriptions[channel["id"]] = channel
        await self.ws.send(orjson.dumps({"op": "subscribe", "subscriptions": [
            {"id": channel["id"], "channelId": channel["id"]}]}).decode())


async def pubsub_channels(landing: Landing, robot_id: str) -> list[str]:
    """The robot's Redis pub/sub channels someone (the service) subscribes to now."""
    channels = await asyncio.to_thread(landing.redis.client.pubsub_channels, f"live:{robot_id}:*")
    return sorted(c.decode() if isinstance(c, bytes) else c for c in channels)


async def until_received(client: FoxgloveClient, topic: str, send: Any, tries: int = 40) -> tuple[int, Any]:
    """Land data with ``send()`` until a message of ``topic`` arrives (the service follows a robot
    only once a client subscribed: what was published before is not for it)."""
    for _ in range(tries):
        await asyncio.to_thread(send)
        received = await client.next_message(0.5)
        while received is not None and received[0] != topic:
            received = await client.next_message(0.5)
        if received is not None:
            return received[1], received[2]
    raise AssertionError(f"nothing arrived on {topic}")


@pytest.mark.timeout(60)
async def test_a_client_sees_the_robot_with_foxglove_schemas_and_gets_its_pose_and_frames(
        landing: Landing, fox_settings: Settings, robot_id: str) -> None:
    robot = SimulatedRobot(robot_id, "s1", now_us())
    sent = {}

    def stream() -> None:
        record = robot.next_record()
        for i, ts in enumerate(record.times.tolist()):
            sent[ts] = dict(zip(record.names, record.values[:, i].tolist(), strict=True))
        landing.telemetry([record], to=("redis",))

    stream()  # the robot is live (Redis sessions:live) before the service starts
    async with FoxgloveBridge(fox_settings) as bridge:
        async with websockets.connect(bridge.url, subprotocols=[Subprotocol(SUBPROTOCOL)]) as ws:
            client = FoxgloveClient(ws)
            schemas = {topic: (await client.advertised(topic))["schemaName"]
                       for topic in (f"/{robot_id}/pose", f"/{robot_id}/tf", f"/{robot_id}/joints")}
            assert schemas == {f"/{robot_id}/pose": "foxglove.PoseInFrame",
                               f"/{robot_id}/tf": "foxglove.FrameTransform",
                               f"/{robot_id}/joints": "foxglove.JointStates"}
            assert {client.channels[t]["encoding"] for t in schemas} == {"protobuf"}

            assert await pubsub_channels(landing, robot_id) == []  # nobody watches: nothing read
            await client.subscribe(f"/{robot_id}/pose")
            log_time, pose = await until_received(client, f"/{robot_id}/pose", stream)
            values = sent[log_time // 1000]
            assert pose.frame_id == "world"
            assert (pose.pose.position.x, pose.pose.position.y, pose.pose.position.z) == (
                values["pose.position.x"], values["pose.position.y"], values["pose.position.z"])
            assert pose.pose.orientation.w == values["pose.orientation.w"]

            picture = jpeg(64, 48, 90)
            seq = iter(range(1000, 2000))
            image_topic = f"/{robot_id}/images/front/rgb"
            frame = lambda: landing.image(robot_id, "s1", now_us(), seq=next(seq), content=picture,  # noqa: E731
                                          to=("s3", "redis"))
            for _ in range(40):  # a camera's channel is advertised with its first frame
                if image_topic in client.channels:
                    break
                await asyncio.to_thread(frame)
                await client.next_message(0.5)
            assert client.channels[image_topic]["schemaName"] == "foxglove.CompressedImage"
            await client.subscribe(image_topic)
            _, image = await until_received(client, image_topic, frame)
            assert await pubsub_channels(landing, robot_id) == [
                f"live:{robot_id}:s1:images", f"live:{robot_id}:s1:log", f"live:{robot_id}:s1:time_series"]
        for _ in range(50):  # the client left: the service lets go of the robot's Redis channels
            if not await pubsub_channels(landing, robot_id):
                break
            await asyncio.sleep(0.1)  # polling the observable state, not standing in for it
        assert await pubsub_channels(landing, robot_id) == []
    assert image.format == "jpeg" and image.frame_id == "front" and image.data == picture


@pytest.mark.timeout(60)
async def test_a_client_gets_the_robots_log_lines_and_force_torque_samples_live(
        landing: Landing, fox_settings: Settings, robot_id: str) -> None:
    robot = SimulatedRobot(robot_id, "s1", now_us(), rate_hz=30.0, streams=("pose", "force_torque"))
    sent: dict[int, dict[str, float]] = {}
    lines = iter(range(1000))

    def stream() -> None:
        record = robot.next_record()
        for i, ts in enumerate(record.times.tolist()):
            sent[ts] = dict(zip(record.names, record.values[:, i].tolist(), strict=True))
        landing.telemetry([record], to=("redis",))

    def log_line() -> None:
        n = next(lines)
        payload = {**example_payload(DataType.LOG), "level": "error", "logger": "arm.gripper",
                   "message": f"grasp {n} slipped"}
        envelope = build_envelope(DataType.LOG, payload, robot_id=robot_id, session_id="s1", seq=10_000 + n,
                                  timestamp=now_us() / 1e6)
        landing.write([envelope], to=("redis",))

    stream()
    log_topic, ft_topic = f"/{robot_id}/log", f"/{robot_id}/force_torque"
    async with FoxgloveBridge(fox_settings) as bridge, websockets.connect(
            bridge.url, subprotocols=[Subprotocol(SUBPROTOCOL)]) as ws:
        client = FoxgloveClient(ws)
        advertised = {t: await client.advertised(t) for t in (log_topic, ft_topic)}
        assert {t: (c["schemaName"], c["encoding"], c["schemaEncoding"]) for t, c in advertised.items()} == {
            log_topic: ("foxglove.Log", "protobuf", "protobuf"),
            ft_topic: ("robostream.ForceTorque", "json", "jsonschema")}
        assert orjson.loads(advertised[ft_topic]["schema"])["title"] == "robostream.ForceTorque"
        await client.subscribe(ft_topic)
        await client.subscribe(log_topic)
        log_time, sample = await until_received(client, ft_topic, stream)
        log_time_2, line = await until_received(client, log_topic, log_line)
    values = sent[log_time // 1000]
    assert sample == {"timestamp": {"sec": log_time // 1_000_000_000, "nsec": log_time % 1_000_000_000},
                      "force": {a: values[f"force_torque.force.{a}"] for a in "xyz"},
                      "torque": {a: values[f"force_torque.torque.{a}"] for a in "xyz"}}
    assert line.message.startswith("grasp ") and line.message.endswith(" slipped")
    assert (line.level, line.name) == (4, "arm.gripper")  # foxglove.LogLevel.ERROR
    assert line.timestamp.seconds * 1_000_000_000 + line.timestamp.nanos == log_time_2
