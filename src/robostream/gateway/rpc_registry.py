"""Several gateways, one answer per RPC call: a call's state and the gateways' leases in Redis.

Every gateway reads every request; the one holding the robot's connection delivers it. Which
gateway may do what with a call is decided atomically (one Lua script) on the key
``robostream:<prefix>:rpc:call:<correlation_id>``:

* absent -- nobody delivered or answered it yet;
* ``sent:<gateway>`` -- that gateway delivered it to the robot (no other gateway sends it again:
  a call is at most once);
* ``done`` -- it was answered; nobody answers it again. Setting it publishes the correlation id
  on ``robostream:<prefix>:rpc:done`` so the other gateways forget the call at once.

A gateway lives by its lease ``robostream:<prefix>:rpc:gateway:<id>`` (``gateway.rpc_lease_s``,
renewed every third of it). At the deadline the gateway that sent a call answers ``timeout``;
another gateway answers in its stead only once the sender's lease has expired (killed), so calls
of a dead gateway still end with one ``timeout``. When Redis does not answer, each gateway decides
alone (one gateway behaves as before; several may then answer a call twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from robostream.config import Settings

log = logging.getLogger(__name__)

#: What a gateway wants to do with a call (see the module docstring).
Op = Literal["send", "unsend", "answer", "refuse", "timeout"]
#: ``ok`` (sent), ``won`` (answer it: nobody had sent it), ``won-sent`` (answer it: it had been
#: sent), ``done`` (already answered), ``wait`` (sent by a live gateway: it answers), ``sent:<id>``.
Verdict = str

_SCRIPT = """
local v = redis.call('GET', KEYS[1])
local op = ARGV[1]
local me = 'sent:' .. ARGV[2]
if op == 'send' then
  if v == false or v == me then
    redis.call('SET', KEYS[1], me, 'PX', ARGV[3])
    return 'ok'
  end
  return v
end
if op == 'unsend' then
  if v == me then redis.call('DEL', KEYS[1]) end
  return 'ok'
end
if v == 'done' then return 'done' end
if op == 'refuse' and v ~= false and v ~= me then return v end
if op == 'timeout' and v ~= false and v ~= me then
  if redis.call('EXISTS', ARGV[4] .. string.sub(v, 6)) == 1 then return 'wait' end
end
redis.call('SET', KEYS[1], 'done', 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6])
if v == false then return 'won' end
return 'won-sent'
"""


def gateway_id() -> str:
    """A name for this gateway process, unique across restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class CallRegistry:
    """This gateway's view of the shared call states and gateway leases (Redis ``redis.url``)."""

    def __init__(self, settings: Settings, on_done: Callable[[str], None]) -> None:
        self.id = gateway_id()
        self.lease_s = settings.gateway.rpc_lease_s
        base = f"robostream:{settings.topics.prefix}:rpc:"
        self._call_prefix = base + "call:"
        self._gateway_prefix = base + "gateway:"
        self._gateways = base + "gateways"
        self._channel = base + "done"
        self._on_done = on_done
        self._redis = aioredis.Redis.from_url(settings.redis.url, socket_timeout=2.0,
                                              socket_connect_timeout=2.0)
        self._script = self._redis.register_script(_SCRIPT)
        self._tasks: list[asyncio.Task[None]] = []
        self._warned = 0.0
        self._down_until = 0.0  # after a failure Redis is not asked for a while (no 2 s wait per call)
        #: Why Redis cannot be used (None: it answers); shown by ``/healthz``.
        self.problem: str | None = None

    async def start(self) -> None:
        """Take this gateway's lease and listen for answered calls (Redis down: retried in the background)."""
        await self._renew()
        self._tasks = [asyncio.create_task(self._keep_lease(), name="rpc-lease"),
                       asyncio.create_task(self._listen(), name="rpc-done")]

    async def stop(self) -> None:
        """Give up the lease (the other gateways take over at once) and close."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._gateway_prefix + self.id)
            await self._redis.zrem(self._gateways, self.id)
        await self._redis.aclose()

    async def decide(self, op: Op, correlation_id: str, deadline_us: int) -> Verdict:
        """Apply ``op`` to the call's state; without Redis the verdict is this gateway's alone."""
        ttl_ms = max(1000, (deadline_us - time.time_ns() // 1000) // 1000 + 60_000)
        alone: Verdict = "ok" if op in ("send", "unsend") else "won"
        if time.monotonic() < self._down_until:
            return alone
        try:
            verdict = await self._script(
                keys=[self._call_prefix + correlation_id],
                args=[op, self.id, ttl_ms, self._gateway_prefix, self._channel, correlation_id])
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + 5.0
            self._warn(f"RPC call states in Redis unavailable ({exc}); deciding alone")
            self.problem = str(exc) or type(exc).__name__
            return alone
        self.problem = None
        return verdict.decode() if isinstance(verdict, bytes) else str(verdict)

    async def others_alive(self) -> bool:
        """Whether another gateway holds a lease (it holds this gateway's waiting calls too)."""
        try:
            now_ms = time.time() * 1000
            alive = await self._redis.zrangebyscore(self._gateways, now_ms, "+inf")
        except (RedisError, OSError):
            return False
        return any((m.decode() if isinstance(m, bytes) else str(m)) != self.id for m in alive)

    async def _renew(self) -> None:
        lease_ms = int(self.lease_s * 1000)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._gateway_prefix + self.id, b"1", px=lease_ms)
                pipe.zadd(self._gateways, {self.id: time.time() * 1000 + lease_ms})
                pipe.zremrangebyscore(self._gateways, "-inf", time.time() * 1000 - 3_600_000)
                pipe.pexpire(self._gateways, max(60_000, 3 * lease_ms))  # gone once every gateway is
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn(f"cannot renew the gateway's RPC lease in Redis: {exc}")
            self.problem = str(exc) or type(exc).__name__
        else:
            self.problem = None

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            await self._renew()

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and isinstance(message.get("data"), bytes):
                        self._on_done(message["data"].decode())
            except (RedisError, OSError) as exc:
                self._warn(f"RPC answers channel in Redis unavailable: {exc}")
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _warn(self, text: str) -> None:
        if time.monotonic() - self._warned > 10:
            self._warned = time.monotonic()
            log.warning(text)
