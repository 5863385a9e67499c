"""``GET /v1/robots``, ``GET /v1/sessions`` and ``GET /v1/sessions/{id}`` from the ``sessions``
collection the MongoDB sink keeps (start/end events and running stats), plus the configured
robots. A session's API id is ``<robot_id>:<session_id>`` (``:`` never occurs in an id).

A running session is listed as soon as its first sample reached the live view: the Redis sink
registers every session it writes data of in ``sessions:live`` with its newest sample's time, and
a session seen there within :data:`LIVE_SESSION_FRESH_US` but not (yet) in MongoDB is shown as
``running`` with that time as ``last_seen``."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Annotated, Any, cast

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from robostream.api.context import context_of
from robostream.api.errors import ApiError, not_found
from robostream.api.params import (
    ID_SCHEMA,
    NoParams,
    QueryParams,
    checked_id,
    datetime_to_us,
    id_spec,
    int_spec,
    micros_to_datetime,
    micros_to_iso,
    text_spec,
    time_spec,
)
from robostream.api.stores import Stores
from robostream.sinks import keys

log = logging.getLogger(__name__)

#: A telemetry document holds the points of one record within one minute: its points end at
#: most this long after its ``timestamp`` (the session's ``stats.last_seen``).
MAX_DOC_SPAN_US = 60_000_000
DEFAULT_SESSIONS_LIMIT = 100
RECENT_FRAMES_US = 600_000_000  # cameras seen in the session's last 10 minutes
#: A session only Redis knows of is listed while its newest sample is at most this old (by then
#: the MongoDB sink has landed its document, or it is not running any more).
LIVE_SESSION_FRESH_US = 300_000_000


class RobotsParams(NoParams):
    """``GET /v1/robots`` takes no query parameters."""


class SessionsParams(QueryParams):
    """``GET /v1/sessions``."""

    robot: Annotated[str | None, id_spec("robot", required=False)]
    from_: Annotated[int | None, time_spec("overlapping from")]
    to: Annotated[int | None, time_spec("overlapping until")]
    limit: Annotated[int, int_spec("most items to return", default=DEFAULT_SESSIONS_LIMIT, high=10_000)]


class SessionParams(QueryParams):
    """``GET /v1/sessions/{id}``: ``robot`` is checked with the path's id."""

    robot: Annotated[str | None, text_spec("robot id, when the path gives a bare session id", ID_SCHEMA)]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _iso(value: Any) -> str | None:
    return micros_to_iso(datetime_to_us(value)) if isinstance(value, datetime) else None


def session_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API view of a ``sessions`` document."""
    stats = doc.get("stats") or {}
    return {
        "id": f"{doc['robot_id']}:{doc['session_id']}",
        "robot_id": doc["robot_id"],
        "session_id": doc["session_id"],
        "status": doc.get("status", "unknown"),
        "started_at": _iso(doc.get("started_at")),
        "ended_at": _iso(doc.get("ended_at")),
        "last_seen": _iso(stats.get("last_seen")),
        "stats": {
            "total_telemetry_points": int(stats.get("total_telemetry_points", 0)),
            "total_frames": int(stats.get("total_frames", 0)),
            "data_size_bytes": int(stats.get("data_size_bytes", 0)),
        },
        "config": doc.get("config"),
        "end_stats": doc.get("end"),
    }


def session_span_us(doc: dict[str, Any]) -> tuple[int | None, int | None]:
    """First and last moment (µs) a session document vouches for (either may be unknown)."""
    started = doc.get("started_at")
    start = datetime_to_us(started) if isinstance(started, datetime) else None
    ends = [v for v in (doc.get("ended_at"), (doc.get("stats") or {}).get("last_seen"))
            if isinstance(v, datetime)]
    end = max(datetime_to_us(v) for v in ends) if ends else None
    return start, end


def overlaps(doc: dict[str, Any], start_us: int | None, end_us: int | None) -> bool:
    """Does the session overlap ``[start_us, end_us]`` (open ends: unbounded)?"""
    first, last = session_span_us(doc)
    if end_us is not None and first is not None and first > end_us:
        return False
    running = doc.get("status") == "running"
    return not (start_us is not None and last is not None and not running
                and last + MAX_DOC_SPAN_US < start_us)


async def live_sessions(stores: Stores) -> list[dict[str, Any]]:
    """Sessions the Redis sink saw data of, as minimal ``sessions`` documents (``running``).

    Redis trouble only hides these (MongoDB's documents are still listed): logged, not raised.
    """
    fresh_since = int(time.time() * 1_000_000) - LIVE_SESSION_FRESH_US
    try:
        entries = await stores.redis.zrangebyscore(keys.LIVE_SESSIONS_KEY, fresh_since, "+inf",
                                                   withscores=True)
    except (RedisError, OSError) as exc:
        log.warning("live sessions unavailable: %s: %s", type(exc).__name__, exc)
        return []
    docs = []
    for member, score in cast(list[tuple[bytes, float]], entries):
        robot_id, _, session_id = member.decode().partition(":")
        docs.append({"robot_id": robot_id, "session_id": session_id, "status": "running",
                     "stats": {"last_seen": micros_to_datetime(int(score))}})
    return docs


def not_landed(live: list[dict[str, Any]], landed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live sessions MongoDB has no document of yet."""
    known = {(d.get("robot_id"), d.get("session_id")) for d in landed}
    return [d for d in live if (d["robot_id"], d["session_id"]) not in known]


async def find_session(stores: Stores, robot_id: str, session_id: str) -> dict[str, Any] | None:
    """The session's document, or its live entry while MongoDB has none yet."""
    doc = await stores.db.sessions.find_one({"_id": keys.session_doc_id(robot_id, session_id)})
    if doc is None:
        live = [d for d in await live_sessions(stores)
                if d["robot_id"] == robot_id and d["session_id"] == session_id]
        doc = live[0] if live else None
    return doc


async def list_robots(request: web.Request) -> web.Response:
    """``GET /v1/robots``: configured robots and every robot with sessions in MongoDB."""
    ctx = context_of(request)
    RobotsParams.parse(request.query, ctx.settings.api)
    rows = await (await ctx.stores.db.sessions.aggregate([
        {"$group": {"_id": "$robot_id", "sessions": {"$sum": 1},
                    "last_seen": {"$max": "$stats.last_seen"}}},
    ])).to_list(None)
    seen = {row["_id"]: row for row in rows if isinstance(row.get("_id"), str)}
    live = await live_sessions(ctx.stores)
    if live:
        ids = [keys.session_doc_id(d["robot_id"], d["session_id"]) for d in live]
        landed = await ctx.stores.db.sessions.find({"_id": {"$in": ids}},
                                                   {"robot_id": 1, "session_id": 1}).to_list(None)
        for doc in not_landed(live, landed):
            row = seen.setdefault(doc["robot_id"], {"sessions": 0})
            row["sessions"] = int(row.get("sessions", 0)) + 1
    configured = {robot.id: robot for robot in ctx.settings.robots}
    robots = []
    for robot_id in sorted(set(seen) | set(configured)):
        row = seen.get(robot_id, {})
        robot = configured.get(robot_id)
        robots.append({"robot_id": robot_id, "configured": robot is not None,
                       "cameras": list(robot.cameras) if robot else [],
                       "sessions": int(row.get("sessions", 0)), "last_seen": _iso(row.get("last_seen"))})
    return json_response({"robots": robots})


async def list_sessions(request: web.Request) -> web.Response:
    """``GET /v1/sessions?robot=&from=&to=&limit=``: newest first."""
    ctx = context_of(request)
    params = SessionsParams.parse(request.query, ctx.settings.api)
    robot_id, start_us, end_us, limit = params.robot, params.from_, params.to, params.limit
    where = {"robot_id": robot_id} if robot_id else {}
    docs = await ctx.stores.db.sessions.find(where).to_list(None)
    live = [d for d in await live_sessions(ctx.stores) if robot_id is None or d["robot_id"] == robot_id]
    docs += not_landed(live, docs)
    docs = [d for d in docs if isinstance(d.get("robot_id"), str) and isinstance(d.get("session_id"), str)
            and overlaps(d, start_us, end_us)]
    docs.sort(key=lambda d: (session_span_us(d)[0] or session_span_us(d)[1] or 0, d["session_id"]),
              reverse=True)
    return json_response({"sessions": [session_json(d) for d in docs[:limit]]})


def split_session_id(value: str, robot_query: str | None) -> tuple[str | None, str]:
    """``robot:session`` or a bare session id (with ``?robot=``) -> checked ids."""
    robot_part, sep, session_part = value.partition(":")
    if sep:
        if robot_query is not None and robot_query != robot_part:
            raise ApiError(400, "invalid_parameter", "robot= does not match the id's robot")
        return checked_id(robot_part, "robot_id"), checked_id(session_part, "session_id")
    robot = checked_id(robot_query, "robot") if robot_query else None
    return robot, checked_id(value, "session_id")


async def _metric_names(ctx_stores: Stores, robot_id: str, session_id: str) -> list[str]:
    """Metric names of the newest point in the Redis ring (what the live plot can show)."""
    ring = keys.latest_key(robot_id, session_id)
    newest = cast(list[bytes], await ctx_stores.redis.zrange(ring, -1, -1))
    if not newest:
        return []
    point = orjson.loads(newest[0])
    return sorted(point.get("values") or {})


async def _cameras(stores: Stores, doc: dict[str, Any]) -> list[str]:
    """Cameras of the session's start event and of its newest frames (a bounded read: no
    ``distinct`` over every frame of a long session)."""
    configured = [c.get("camera_id") for c in (doc.get("config") or {}).get("cameras") or []
                  if isinstance(c, dict)]
    _, last = session_span_us(doc)
    seen: list[Any] = []
    if last is not None:
        since = micros_to_datetime(last - RECENT_FRAMES_US)
        cursor = stores.db.frames_metadata.find(
            {"robot_id": doc["robot_id"], "session_id": doc["session_id"], "timestamp": {"$gte": since}},
            {"camera_id": 1}).limit(1000)
        seen = [d.get("camera_id") for d in await cursor.to_list(None)]
    return sorted({c for c in [*configured, *seen] if isinstance(c, str)})


async def get_session(request: web.Request) -> web.Response:
    """``GET /v1/sessions/{id}``: one session with its cameras and live metric names."""
    ctx = context_of(request)
    params = SessionParams.parse(request.query, ctx.settings.api)
    robot_id, session_id = split_session_id(request.match_info["id"], params.robot)
    if robot_id is None:
        docs = await ctx.stores.db.sessions.find({"session_id": session_id}).to_list(10)
        if len(docs) > 1:
            robots = ", ".join(sorted(str(d.get("robot_id")) for d in docs))
            raise ApiError(409, "ambiguous_session",
                           f"session {session_id!r} exists for several robots ({robots}): "
                           "use <robot_id>:<session_id> or ?robot=")
        if not docs:
            docs = [d for d in await live_sessions(ctx.stores) if d["session_id"] == session_id][:10]
        doc = docs[0] if docs else None
    else:
        doc = await find_session(ctx.stores, robot_id, session_id)
    if doc is None:
        raise not_found(f"no session {session_id!r}" + (f" of robot {robot_id!r}" if robot_id else ""))
    body = session_json(doc)
    body["cameras"] = await _cameras(ctx.stores, doc)
    body["metrics"] = await _metric_names(ctx.stores, doc["robot_id"], doc["session_id"])
    return json_response(body)
