"""``POST /v1/robots/{id}/rpc``: call a method on a robot and answer with its response.

The request goes the platform's one RPC path (:class:`~robostream.rpc.RpcCaller`: the requests
topic, the gateway, the robot's WebSocket, the responses topic). The caller starts on the first
call, so an API that nobody uses to call robots never connects to Kafka.

Answers: ``200`` with the robot's response (``status`` ``ok`` with its ``result``, or ``error``
with the robot's ``{code, message}``); ``504 timeout`` when the deadline passed (robot offline,
busy or late); ``404 unknown_robot``; ``503`` when Kafka, the registry or the gateway refused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from robostream.api.context import context_of
from robostream.api.errors import ApiError, bad_request
from robostream.api.params import NoParams, checked_id
from robostream.config import Settings
from robostream.rpc import METHOD_PATTERN, RpcCaller, RpcCallError, RpcInputError, RpcReply

log = logging.getLogger(__name__)
Schema = dict[str, Any]


class RpcBody(BaseModel):
    """The body of ``POST /v1/robots/{id}/rpc``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    method: str = Field(pattern=METHOD_PATTERN, description="method the robot answers, e.g. ping or "
                        "camera.set_exposure", examples=["camera.set_exposure"])
    params: Any = Field(None, description="the method's arguments: any JSON value (most methods take an "
                        "object)", examples=[{"camera": "front", "exposure_ms": 8}])
    timeout_s: float | None = Field(None, gt=0, description="how long to wait for the answer, seconds "
                                    "(default api.rpc_default_timeout_s, at most api.rpc_max_timeout_s)")

    @classmethod
    def openapi(cls) -> Schema:
        """The model's JSON schema in OpenAPI 3.0 terms (``nullable``, boolean exclusive bounds)."""
        return _openapi30(cls.model_json_schema())


def _openapi30(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _openapi30(v) for k, v in schema.items() if k != "title"}
    options = out.pop("anyOf", None)
    if options is not None:
        rest = [o for o in options if o.get("type") != "null"]
        out = {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **out}
        if len(rest) < len(options):
            out["nullable"] = True
    if isinstance(out.get("exclusiveMinimum"), int | float) and not isinstance(out["exclusiveMinimum"], bool):
        out["minimum"], out["exclusiveMinimum"] = out["exclusiveMinimum"], True
    if "examples" in out and isinstance(out["examples"], list):
        out["example"] = out.pop("examples")[0]
    return out


class RobotCalls:
    """The API's :class:`RpcCaller`, started on first use and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._caller: RpcCaller | None = None
        self._lock = asyncio.Lock()

    async def caller(self) -> RpcCaller:
        async with self._lock:
            if self._caller is None:
                caller = RpcCaller(self.settings)
                await caller.start(wait_s=10)
                self._caller = caller
            return self._caller

    async def close(self) -> None:
        if self._caller is not None:
            await self._caller.close()
            self._caller = None


async def read_body(request: web.Request) -> RpcBody:
    """The JSON body as :class:`RpcBody` (``400 invalid_json`` / ``invalid_body``)."""
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise bad_request("invalid_json", f"the body is not JSON: {exc}") from None
    try:
        return RpcBody.model_validate(data)
    except PydanticError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise bad_request("invalid_body", f"expected {{method, params, timeout_s}}: {problems}") from None


async def call_robot(request: web.Request) -> web.Response:
    """``POST /v1/robots/{id}/rpc``."""
    ctx = context_of(request)
    api = ctx.settings.api
    NoParams.parse(request.query, api)
    robot_id = checked_id(request.match_info["id"], "robot id")
    body = await read_body(request)
    timeout_s = body.timeout_s or api.rpc_default_timeout_s
    if timeout_s > api.rpc_max_timeout_s:
        raise bad_request("invalid_body", f"timeout_s: at most {api.rpc_max_timeout_s:g} seconds")
    try:
        caller = await ctx.robot_calls.caller()
        reply = await caller.call(robot_id, body.method, body.params, timeout_s=timeout_s)
    except RpcInputError as exc:
        raise bad_request("invalid_body", str(exc)) from None
    except RpcCallError as exc:
        raise ApiError(503, "rpc_unavailable", str(exc), {"Retry-After": "1"}) from None
    log.info("robot call %s %s (%s): %s in %.0f ms", robot_id, body.method, reply.correlation_id,
             reply.status, reply.elapsed_ms)
    return answer(reply, timeout_s)


def answer(reply: RpcReply, timeout_s: float) -> web.Response:
    """The HTTP answer of a call's reply."""
    outcome = reply.outcome
    if outcome in ("ok", "robot_error"):
        return web.Response(body=orjson.dumps(reply.model_dump(mode="json")), content_type="application/json")
    detail = reply.error.message if reply.error else reply.status
    if outcome == "no_answer":
        raise ApiError(504, "timeout", f"no answer from robot {reply.robot_id} to {reply.method} within "
                       f"{timeout_s:g} s: {detail}")
    if reply.status == "not_found":
        raise ApiError(404, "unknown_robot", detail)
    code = reply.error.code if reply.error else reply.status
    raise ApiError(503, code, detail, {"Retry-After": "1"})
