"""``GET /v1/stats/{metric}``: windows of one metric, Redis first, MongoDB as the fallback.

Redis keeps the last ``redis.latest_window`` windows of each metric and resolution
(``stats:{robot}:{session}:{metric}:{resolution}``, scored by window start); MongoDB's
``aggregations`` keeps every 1m and 1h window for ``mongo.hot_retention_days``. A request whose
range starts before the oldest window Redis still holds is answered from MongoDB.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from aiohttp import web

from robostream.api.context import context_of
from robostream.api.params import (
    QueryParams,
    choice_spec,
    datetime_to_us,
    id_spec,
    int_spec,
    metric_name,
    micros_to_datetime,
    micros_to_iso,
    time_spec,
)
from robostream.api.sessions import json_response
from robostream.api.stores import Stores
from robostream.sinks import keys
from robostream.topics import StatsResolution

RESOLUTIONS = tuple(str(resolution) for resolution in StatsResolution)
DEFAULT_LIMIT = 1000
_STAT_FIELDS = ("count", "min", "max", "mean", "stddev", "last")


class StatsParams(QueryParams):
    """``GET /v1/stats/{metric}``."""

    robot: Annotated[str, id_spec("robot")]
    session: Annotated[str, id_spec("session")]
    resolution: Annotated[str, choice_spec(RESOLUTIONS, "window length", default="1m")]
    from_: Annotated[int | None, time_spec("first window start")]
    to: Annotated[int | None, time_spec("last window start")]
    limit: Annotated[int, int_spec("most items to return", default=DEFAULT_LIMIT, limit="stats_limit")]


def _us(value: Any) -> int | None:
    if isinstance(value, datetime):
        return datetime_to_us(value)
    return int(value) if isinstance(value, int) else None


def window_json(item: dict[str, Any]) -> dict[str, Any]:
    """One window, from a Redis member (µs ints) or an ``aggregations`` document (datetimes)."""
    start = _us(item.get("window_start_us", item.get("window_start")))
    end = _us(item.get("window_end_us", item.get("window_end")))
    last_ts = _us(item.get("last_timestamp"))
    out: dict[str, Any] = {
        "window_start_us": start,
        "window_end_us": end,
        "window_start": micros_to_iso(start) if start is not None else None,
    }
    out.update({name: item.get(name) for name in _STAT_FIELDS})
    out["last_timestamp_us"] = last_ts
    out["unit"] = item.get("unit")
    return out


async def windows_from_redis(stores: Stores, key: str, start_us: int | None, end_us: int | None,
                             limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Windows of the Redis key in range (or the newest ``limit``) and the oldest start held."""
    pipe = stores.redis.pipeline(transaction=False)
    pipe.zrange(key, 0, 0, withscores=True)
    if start_us is None and end_us is None:
        pipe.zrange(key, -limit, -1)
    else:
        pipe.zrangebyscore(key, start_us if start_us is not None else "-inf",
                           end_us if end_us is not None else "+inf", start=0, num=limit)
    oldest, members = await pipe.execute()
    first = int(oldest[0][1]) if oldest else None
    return [window_json(orjson.loads(m)) for m in members], first


async def windows_from_mongo(stores: Stores, robot_id: str, session_id: str, metric: str,
                             resolution: str, start_us: int | None, end_us: int | None,
                             limit: int) -> list[dict[str, Any]]:
    """Windows of the ``aggregations`` collection in range (or the newest ``limit``)."""
    where: dict[str, Any] = {"robot_id": robot_id, "session_id": session_id, "metric": metric,
                             "resolution": resolution}
    span: dict[str, Any] = {}
    if start_us is not None:
        span["$gte"] = micros_to_datetime(start_us)
    if end_us is not None:
        span["$lte"] = micros_to_datetime(end_us)
    if span:
        where["window_start"] = span
    newest_first = start_us is None and end_us is None
    cursor = stores.db.aggregations.find(where, {"_id": 0}).sort(
        "window_start", -1 if newest_first else 1).limit(limit)
    docs = await cursor.to_list(None)
    if newest_first:
        docs.reverse()
    return [window_json(d) for d in docs]


def redis_covers(first_start: int | None, start_us: int | None) -> bool:
    """Does Redis hold the range? (No ``from``: the newest windows are what is asked.)"""
    return first_start is not None and (start_us is None or first_start <= start_us)


async def get_stats(request: web.Request) -> web.Response:
    """``GET /v1/stats/{metric}?robot=&session=&resolution=&from=&to=&limit=``."""
    ctx = context_of(request)
    metric = metric_name(request.match_info["metric"])
    params = StatsParams.parse(request.query, ctx.settings.api)
    robot_id, session_id, resolution = params.robot, params.session, params.resolution
    start_us, end_us, limit = params.from_, params.to, params.limit
    key = keys.stats_key(robot_id, session_id, metric, resolution)
    windows, first_start = await windows_from_redis(ctx.stores, key, start_us, end_us, limit)
    source = "redis"
    if not redis_covers(first_start, start_us):
        stored = await windows_from_mongo(ctx.stores, robot_id, session_id, metric, resolution,
                                          start_us, end_us, limit)
        if stored or not windows:
            windows, source = stored, "mongo"
    return json_response({"robot_id": robot_id, "session_id": session_id, "metric": metric,
                          "resolution": resolution, "source": source, "windows": windows})
