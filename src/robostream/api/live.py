"""``WS /v1/live``: the latest window from Redis, then every new item from Redis pub/sub.

One :class:`LiveHub` per API process holds **one** Redis pub/sub connection and one reader task.
It subscribes to a channel when the first WebSocket client needs it and unsubscribes when the
last one leaves; every message is handed, without waiting, to the bounded queue of each client
of its channel (:class:`ClientQueue`, drop-oldest). A client's own writer task empties its queue
into its socket, so a slow client only ever delays itself: when its queue overflows, the oldest
messages go and the client is told how many with a ``dropped`` message.

Messages (JSON text frames) a client receives, in order:

* ``{"type": "hello", "robot_id", "session_id", "types", "queue_size"}``
* ``{"type": "snapshot", "robot_id", "session_id", "points": [...]}``: the Redis ring
  (``telemetry:{robot}:{session}:latest``, oldest first; only with ``time_series`` in types);
* then, as the sinks publish them: ``{"type": "time_series", "points": [...]}`` (a point is
  ``{"seq", "i", "ts_us", "values": {metric: value}}``), ``{"type": "frame", "urls": {...},
  ...}``, ``{"type": "stats", "metric", "resolution", "window_start", ...}``, ``{"type": "log",
  "seq", "timestamp_us", "level", "logger", "message", "attributes"}``;
* ``{"type": "dropped", "count": n, "total": m}`` before the next message, when the client fell
  behind and ``n`` messages were dropped (``m`` since it connected).

Points at or before the snapshot's newest point are not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Iterable
from typing import Annotated, cast

import orjson
import redis.asyncio as aredis
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from robostream.api.context import context_of
from robostream.api.errors import ApiError, bad_request
from robostream.api.params import QueryParams, id_spec, list_spec, text_spec
from robostream.sinks import keys

log = logging.getLogger(__name__)

LIVE_TYPES = ("time_series", "images", "stats", "log")
SUBSCRIBE_TIMEOUT_S = 5.0
HEARTBEAT_S = 30.0
CLOSE_TIMEOUT_S = 2.0  # a client that does not answer our close frame in time is cut off
#: Kernel send buffer of a live socket: small, so a stalled client's backlog is dropped in our
#: queue (and counted) instead of sitting, stale, in the kernel.
SEND_BUFFER_BYTES = 256 * 1024
_RECONNECT_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)
#: how long the reader waits for a message before it runs pending (un)subscribe commands
_COMMAND_POLL_S = 0.05


class ClientQueue:
    """The bounded queue of one client: full means the oldest message is dropped and counted."""

    def __init__(self, size: int) -> None:
        self._items: deque[bytes] = deque(maxlen=size)
        self._ready = asyncio.Event()
        self.dropped = 0  # since the last ``take``
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        return self._items.maxlen or 0

    def put(self, message: bytes) -> None:
        """Never waits: a full queue drops its oldest message."""
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
            self.dropped_total += 1
        self._items.append(message)
        self._ready.set()

    async def take(self) -> tuple[int, list[bytes]]:
        """Wait for messages; return ``(dropped since the last take, every queued message)``."""
        await self._ready.wait()
        self._ready.clear()
        items = list(self._items)
        self._items.clear()
        dropped, self.dropped = self.dropped, 0
        return dropped, items


def message_frame(channel_type: str, data: bytes) -> bytes:
    """The client message of a pub/sub message: the sinks' JSON, with ``type`` where it lacks one.

    time_series and frame messages carry their ``type``; stats windows do not: ``{"type":
    "stats", ...}`` is spliced in front without parsing the JSON.
    """
    if channel_type == "stats" and data[:1] == b"{":
        return b'{"type":"stats",' + data[1:] if len(data) > 2 else b'{"type":"stats"}'
    return data


class LiveHub:
    """One Redis pub/sub reader fanned out to the clients' queues."""

    def __init__(self, redis: aredis.Redis) -> None:
        self._redis = redis
        self._pubsub: aredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribers: dict[str, set[ClientQueue]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        # subscribe/unsubscribe run in the reader task, between reads: redis-py's pub/sub
        # connection cannot take a command while another coroutine waits on it
        self._commands: asyncio.Queue[tuple[str, list[str]]] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self.messages = 0
        #: Messages queued to clients: one per client each message fans out to.
        self.forwarded = 0

    @property
    def channels(self) -> list[str]:
        return sorted(self._subscribers)

    def clients(self) -> int:
        return len({id(q) for qs in self._subscribers.values() for q in qs})

    async def subscribe(self, channels: Iterable[str], queue: ClientQueue) -> None:
        """Route ``channels`` to ``queue``; returns once Redis confirmed every subscription."""
        async with self._lock:
            waits = []
            new = []
            for channel in channels:
                self._subscribers.setdefault(channel, set()).add(queue)
                if channel not in self._confirmed:
                    self._confirmed[channel] = asyncio.get_running_loop().create_future()
                    new.append(channel)
                waits.append(self._confirmed[channel])
            if new:
                self._ensure_reader()
                self._commands.put_nowait(("subscribe", new))
        await asyncio.wait_for(asyncio.gather(*[asyncio.shield(w) for w in waits]), SUBSCRIBE_TIMEOUT_S)

    async def unsubscribe(self, channels: Iterable[str], queue: ClientQueue) -> None:
        """Stop routing to ``queue``; channels nobody listens to any more are unsubscribed."""
        async with self._lock:
            idle = []
            for channel in channels:
                queues = self._subscribers.get(channel)
                if queues is None:
                    continue
                queues.discard(queue)
                if not queues:
                    del self._subscribers[channel]
                    self._confirmed.pop(channel, None)
                    idle.append(channel)
            if idle and self._pubsub is not None:
                self._commands.put_nowait(("unsubscribe", idle))

    def _ensure_reader(self) -> aredis.client.PubSub:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(self._pubsub), name="live-hub-reader")
        return self._pubsub

    async def _read(self, pubsub: aredis.client.PubSub) -> None:
        """The one reader: dispatch every message; reconnect (and resubscribe) on errors."""
        failures = 0
        while True:
            try:
                if pubsub.connection is None:  # nothing subscribed yet: wait for a command
                    await self._run(pubsub, await self._commands.get())
                    continue
                while not self._commands.empty():
                    await self._run(pubsub, self._commands.get_nowait())
                message = await pubsub.get_message(timeout=_COMMAND_POLL_S)
                failures = 0
            except (RedisError, OSError) as exc:
                delay = _RECONNECT_DELAYS_S[min(failures, len(_RECONNECT_DELAYS_S) - 1)]
                failures += 1
                log.warning("live pub/sub reader: %s: %s (retrying in %.1fs)", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                continue
            if message is not None:
                self._handle(message)

    @staticmethod
    async def _run(pubsub: aredis.client.PubSub, command: tuple[str, list[str]]) -> None:
        verb, channels = command
        if verb == "subscribe":
            await pubsub.subscribe(*channels)
        else:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(*channels)

    def _handle(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        channel = _text(message.get("channel"))
        if kind == "message":
            self._dispatch(channel, message.get("data"))
        elif kind == "subscribe":
            future = self._confirmed.get(channel)
            if future is not None and not future.done():
                future.set_result(None)

    def _dispatch(self, channel: str, data: object) -> None:
        queues = self._subscribers.get(channel)
        if not queues or not isinstance(data, bytes):
            return
        self.messages += 1
        frame = message_frame(channel.rsplit(":", 1)[-1], data)
        for queue in queues:
            queue.put(frame)
        self.forwarded += len(queues)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        self._reader = self._pubsub = None
        self._subscribers.clear()
        self._confirmed.clear()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the WebSocket route ---------------------------------------------------------------------------


class SnapshotFilter:
    """Drops live points already sent in the snapshot (until the first newer message)."""

    def __init__(self, newest_ts_us: int | None) -> None:
        self.newest = newest_ts_us

    def apply(self, frame: bytes) -> bytes | None:
        if self.newest is None or not frame.startswith(b'{"points":'):
            return frame  # time_series messages are canonical JSON: "points" sorts first
        message = orjson.loads(frame)
        points = [p for p in message.get("points", []) if p.get("ts_us", 0) > self.newest]
        if len(points) == len(message.get("points", [])):
            self.newest = None  # caught up: stop looking
            return frame
        if not points:
            return None
        message["points"] = points
        self.newest = None
        return orjson.dumps(message)


def live_types(raw: list[str]) -> list[str]:
    unknown = [t for t in raw if t not in LIVE_TYPES]
    if unknown:
        raise bad_request("invalid_parameter",
                          f"types: unknown {', '.join(unknown)}; expected any of {', '.join(LIVE_TYPES)}")
    return raw or list(LIVE_TYPES)


class LiveParams(QueryParams):
    """``GET /v1/live`` (``access_token``: the read token of browsers, checked by the auth middleware)."""

    robot: Annotated[str, id_spec("robot")]
    session: Annotated[str, id_spec("session")]
    types: Annotated[tuple[str, ...], list_spec(
        f"comma-separated: {', '.join(LIVE_TYPES)} (default: all)", "time_series,images", live_types)]
    access_token: Annotated[str | None, text_spec("read token (browsers)")]


async def _snapshot(redis: aredis.Redis, robot_id: str, session_id: str) -> tuple[bytes, int | None]:
    """The ring as a ``snapshot`` message (members are JSON already: no parsing) and its newest ts."""
    members = cast(list[bytes], await redis.zrange(keys.latest_key(robot_id, session_id), 0, -1))
    head = orjson.dumps({"type": "snapshot", "robot_id": robot_id, "session_id": session_id})
    frame = head[:-1] + b',"points":[' + b",".join(members) + b"]}"
    newest = int(orjson.loads(members[-1]).get("ts_us", 0)) if members else None
    return frame, newest


async def _pump(ws: web.WebSocketResponse, queue: ClientQueue, snapshot_filter: SnapshotFilter) -> None:
    """This client's writer: its queue into its socket (only this client waits on it)."""
    while not ws.closed:
        dropped, frames = await queue.take()
        if dropped:
            notice = {"type": "dropped", "count": dropped, "total": queue.dropped_total}
            await ws.send_frame(orjson.dumps(notice), WSMsgType.TEXT)
        for frame in frames:
            kept = snapshot_filter.apply(frame)
            if kept is not None:
                await ws.send_frame(kept, WSMsgType.TEXT)


def _small_send_buffer(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


async def live(request: web.Request) -> web.WebSocketResponse:
    """``GET /v1/live?robot=&session=&types=`` (WebSocket)."""
    ctx = context_of(request)
    params = LiveParams.parse(request.query, ctx.settings.api)
    robot_id, session_id, types = params.robot, params.session, list(params.types)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=64 * 1024, timeout=CLOSE_TIMEOUT_S)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "GET /v1/live is a WebSocket: send an Upgrade request")
    await ws.prepare(request)
    _small_send_buffer(request)
    queue = ClientQueue(ctx.settings.api.live_queue_size)
    channels = [keys.live_channels(robot_id, session_id, t)[1] for t in types]
    pump: asyncio.Task[None] | None = None
    try:
        await ctx.hub.subscribe(channels, queue)
        await ws.send_frame(orjson.dumps({"type": "hello", "robot_id": robot_id, "session_id": session_id,
                                          "types": types, "queue_size": queue.size}), WSMsgType.TEXT)
        newest = None
        if "time_series" in types:
            frame, newest = await _snapshot(ctx.stores.redis, robot_id, session_id)
            await ws.send_frame(frame, WSMsgType.TEXT)
        pump = asyncio.create_task(_pump(ws, queue, SnapshotFilter(newest)), name="live-pump")
        async for message in ws:  # clients only talk to close; a ping text gets a pong
            if message.type == WSMsgType.TEXT and message.data == "ping":
                queue.put(b'{"type":"pong"}')
    except (RedisError, TimeoutError) as exc:
        log.warning("live %s/%s: %s: %s", robot_id, session_id, type(exc).__name__, exc)
        if not ws.closed:
            error = {"type": "error", "code": "store_unavailable", "message": "Redis did not answer"}
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_frame(orjson.dumps(error), WSMsgType.TEXT)
    finally:
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await pump
        await ctx.hub.unsubscribe(channels, queue)
        await ws.close()
    return ws
