"""``robostream foxglove``: live robots over the Foxglove WebSocket protocol (``foxglove.websocket.v1``).

Robots are found in Redis ``sessions:live`` (the sinks register every session with its newest
sample): each robot whose newest sample is younger than ``foxglove.session_idle_s`` gets its pose,
transform, joints, IMU, force/torque, metrics and log channels advertised (see
:mod:`robostream.foxglove.messages`). While a Foxglove client is subscribed to any channel of a
robot, the service follows the robot's newest session on the API's Redis pub/sub channels (one
:class:`~robostream.api.live.LiveHub`): telemetry points become pose, transform, joints and
per-stream messages; log records become Log messages; camera frames are fetched from S3 by their
key and become CompressedImage or PointCloud messages (their channels are advertised on the first
frame, like a robot's free ``channels``). Nobody subscribed: nothing is read from Redis but the
session list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import foxglove
import orjson
import redis.asyncio as aredis
from botocore.exceptions import BotoCoreError, ClientError
from foxglove.websocket import ChannelView, Client
from redis.exceptions import RedisError

from robostream.api.live import ClientQueue, LiveHub
from robostream.config import Settings, validate_id
from robostream.errors import RobostreamError
from robostream.foxglove import messages
from robostream.sinks import keys
from robostream.sinks.s3 import s3_client

log = logging.getLogger(__name__)

#: The Redis pub/sub types a followed robot is read from.
LIVE_TYPES = ("time_series", "images", "log")
SERVER_NAME = "robostream"


class FoxgloveServiceError(RobostreamError, RuntimeError):
    """The Foxglove WebSocket server cannot start (e.g. its port is taken)."""


@dataclass
class _Robot:
    """A robot with advertised channels; followed while ``subscriptions`` is not empty."""

    robot_id: str
    session_id: str
    subscriptions: set[tuple[int, str]] = field(default_factory=set)  # (client id, topic)
    queue: ClientQueue | None = None
    redis_channels: list[str] = field(default_factory=list)
    pump: asyncio.Task[None] | None = None


class _Listener(foxglove.ServerListener):
    """The server's callbacks (called on its own threads), handed to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bridge: FoxgloveBridge) -> None:
        self._loop, self._bridge = loop, bridge

    def on_subscribe(self, client: Client, channel: ChannelView) -> None:
        self._loop.call_soon_threadsafe(self._bridge.subscribed, client.id, channel.topic, True)

    def on_unsubscribe(self, client: Client, channel: ChannelView) -> None:
        self._loop.call_soon_threadsafe(self._bridge.subscribed, client.id, channel.topic, False)


class FoxgloveBridge:
    """The Foxglove WebSocket server fed from Redis live pub/sub (and frame bytes from S3)."""

    def __init__(self, settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
        self.settings = settings
        self._host = host or settings.foxglove.host
        self._port = settings.foxglove.port if port is None else port
        self._redis = aredis.Redis.from_url(settings.redis.url, socket_connect_timeout=2, socket_timeout=10,
                                            health_check_interval=30, client_name="robostream-foxglove")
        self._hub = LiveHub(self._redis)
        self._s3: Any = s3_client(settings)
        self._context = foxglove.Context()
        self._server: foxglove.WebSocketServer | None = None
        self._channels: dict[str, foxglove.Channel] = {}
        self._robots: dict[str, _Robot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._discovery: asyncio.Task[None] | None = None
        #: messages logged to the Foxglove channels
        self.published = 0

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else self._port

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self.port}"

    @property
    def robots(self) -> dict[str, str]:
        """``{robot: session}`` of the robots advertised now."""
        return {r.robot_id: r.session_id for r in self._robots.values()}

    async def start(self) -> None:
        listener = _Listener(asyncio.get_running_loop(), self)
        try:
            self._server = foxglove.start_server(name=SERVER_NAME, host=self._host, port=self._port,
                                                 server_listener=listener, context=self._context)
        except RuntimeError as exc:  # foxglove-sdk's FoxgloveError
            raise FoxgloveServiceError(
                f"foxglove_listen_failed: cannot serve on {self._host}:{self._port} ({exc}); stop what "
                "uses the port or choose another (foxglove.port in config.yaml, or --port)") from exc
        with contextlib.suppress(RedisError, OSError):  # Redis not up yet: the next round finds the robots
            await self.discover()
        self._discovery = asyncio.create_task(self._discover_forever(), name="foxglove-discovery")
        log.info("Foxglove WebSocket server on %s", self.url)

    async def stop(self) -> None:
        if self._discovery is not None:
            self._discovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._discovery
        for robot in list(self._robots.values()):
            await self._unfollow(robot)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.stop()
            self._server = None
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        await self._hub.close()
        await self._redis.aclose()

    async def __aenter__(self) -> FoxgloveBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- robots -----------------------------------------------------------------------------------

    async def _discover_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.foxglove.discovery_interval_s)
            try:
                await self.discover()
            except (RedisError, OSError) as exc:
                log.warning("foxglove: cannot read %s: %s: %s", keys.LIVE_SESSIONS_KEY,
                            type(exc).__name__, exc)

    async def discover(self) -> None:
        """Advertise robots that stream now, withdraw idle ones nobody watches; follow a followed
        robot's newer session."""
        since_us = (time.time() - self.settings.foxglove.session_idle_s) * 1_000_000
        members = cast(list[tuple[bytes, float]], await self._redis.zrangebyscore(
            keys.LIVE_SESSIONS_KEY, since_us, "+inf", withscores=True))
        newest: dict[str, tuple[float, str]] = {}
        for member, score in members:
            robot_id, _, session_id = member.decode().partition(":")
            if robot_id not in newest or score > newest[robot_id][0]:
                newest[robot_id] = (score, session_id)
        idle = [r for r, robot in self._robots.items() if r not in newest and not robot.subscriptions]
        for robot_id in idle:
            self._remove_robot(robot_id)
        for robot_id, (_, session_id) in newest.items():
            robot = self._robots.get(robot_id)
            if robot is None:
                self._add_robot(robot_id, session_id)
            elif robot.session_id != session_id:
                log.info("Robot %s: following session %s", robot_id, session_id)
                following = robot.queue is not None
                await self._unfollow(robot)
                robot.session_id = session_id
                if following:
                    await self._follow(robot)

    def _add_robot(self, robot_id: str, session_id: str) -> None:
        try:
            validate_id(robot_id, "robot_id")
            validate_id(session_id, "session_id")
        except ValueError:
            return
        self._robots[robot_id] = _Robot(robot_id, session_id)
        for topic, kind in ((messages.pose_topic(robot_id), messages.PoseInFrame),
                            (messages.transform_topic(robot_id), messages.FrameTransform),
                            (messages.joints_topic(robot_id), messages.JointStates),
                            (messages.log_topic(robot_id), messages.Log)):
            self._channel(topic, messages.schema_of(kind), messages.MESSAGE_ENCODING)
        for stream in messages.STREAMS:
            if stream.fields is not None:  # free channels: advertised with the first sample
                self._channel(messages.stream_topic(robot_id, stream), stream.schema, messages.JSON_ENCODING)
        log.info("Robot %s: advertised (session %s)", robot_id, session_id)

    def _remove_robot(self, robot_id: str) -> None:
        del self._robots[robot_id]
        prefix = f"/{robot_id}/"
        for topic in [t for t in self._channels if t.startswith(prefix)]:
            self._channels.pop(topic).close()
        log.info("Robot %s: idle, withdrawn", robot_id)

    def _channel(self, topic: str, schema: foxglove.Schema, encoding: str) -> foxglove.Channel:
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channels[topic] = foxglove.Channel(
                topic, schema=schema, message_encoding=encoding, context=self._context)
        return channel

    def subscribed(self, client_id: int, topic: str, on: bool) -> None:
        """A client (un)subscribed ``topic``: follow its robot while anyone listens."""
        robot = self._robots.get(messages.robot_of(topic))
        if robot is None:
            return
        before = bool(robot.subscriptions)
        if on:
            robot.subscriptions.add((client_id, topic))
        else:
            robot.subscriptions.discard((client_id, topic))
        if bool(robot.subscriptions) != before:
            self._spawn(self._follow(robot) if robot.subscriptions else self._unfollow(robot))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, robot: _Robot) -> None:
        if robot.queue is not None or not robot.subscriptions:
            return
        robot.queue = ClientQueue(self.settings.foxglove.queue_size)
        robot.redis_channels = [keys.live_channels(robot.robot_id, robot.session_id, t)[1]
                                for t in LIVE_TYPES]
        robot.pump = asyncio.create_task(self._pump(robot, robot.queue), name=f"foxglove-{robot.robot_id}")
        try:
            await self._hub.subscribe(robot.redis_channels, robot.queue)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("foxglove: cannot follow %s: %s: %s", robot.robot_id, type(exc).__name__, exc)
            return
        log.info("Robot %s: following session %s", robot.robot_id, robot.session_id)

    async def _unfollow(self, robot: _Robot) -> None:
        queue, pump = robot.queue, robot.pump
        robot.queue = robot.pump = None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        if queue is not None:
            await self._hub.unsubscribe(robot.redis_channels, queue)

    # -- messages ---------------------------------------------------------------------------------

    async def _pump(self, robot: _Robot, queue: ClientQueue) -> None:
        while True:
            dropped, frames = await queue.take()
            if dropped:
                log.warning("Robot %s: %d live messages dropped (Foxglove fell behind)", robot.robot_id,
                            dropped)
            for frame in frames:
                try:
                    await self._publish(robot.robot_id, orjson.loads(frame))
                except (ValueError, KeyError, TypeError, BotoCoreError, ClientError, OSError) as exc:
                    log.warning("Robot %s: a live message was skipped: %s: %s", robot.robot_id,
                                type(exc).__name__, exc)

    async def _publish(self, robot_id: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "time_series":
            for point in message.get("points", []):
                ts_us = int(point["ts_us"])
                for topic, msg in messages.telemetry_messages(robot_id, ts_us, point.get("values", {})):
                    self._log(topic, msg, ts_us)
        elif kind == "log":
            ts_us = int(message["timestamp_us"])
            self._log(messages.log_topic(robot_id), messages.log_message(ts_us, message), ts_us)
        elif kind == "frame" and "key" in message and "format" in message:
            await self._publish_frame(robot_id, message)

    async def _publish_frame(self, robot_id: str, frame: dict[str, Any]) -> None:
        camera, kind, fmt = str(frame["camera_id"]), str(frame["kind"]), str(frame["format"])
        schema: type[messages.Message]
        if kind == "pointcloud" or fmt.lower() in messages.POINTCLOUD_FORMATS:
            topic, schema = messages.pointcloud_topic(robot_id, camera), messages.PointCloud
        elif fmt.lower() in messages.IMAGE_FORMATS:
            topic, schema = messages.image_topic(robot_id, camera, kind), messages.CompressedImage
        else:
            return
        if not self._channel(topic, messages.schema_of(schema), messages.MESSAGE_ENCODING).has_sinks():
            return  # advertised; fetched only while a client shows it
        key = keys.validate_object_key(str(frame["key"]), robot_id, str(frame["session_id"]))
        data = await asyncio.to_thread(self._get_object, key)
        ts_us = int(frame["timestamp_us"])
        built = messages.media_message(robot_id, ts_us, camera, kind, fmt, data)
        if built is not None:
            self._log(built[0], built[1], ts_us)

    def _get_object(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self.settings.s3.bucket, Key=key)["Body"].read()
        return body

    def _log(self, topic: str, message: messages.Message, ts_us: int) -> None:
        channel = self._channel(topic, messages.schema_of(message), messages.encoding_of(message))
        channel.log(message.encode(), log_time=ts_us * 1000)
        self.published += 1


async def serve_foxglove(settings: Settings, *, host: str | None = None, port: int | None = None,
                         stop: asyncio.Event | None = None) -> None:
    """Run the Foxglove WebSocket server until ``stop`` is set (or forever)."""
    async with FoxgloveBridge(settings, host=host, port=port):
        await (stop or asyncio.Event()).wait()
