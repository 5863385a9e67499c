"""Frames: metadata with presigned URLs, hot-loaded as the seed did.

1. **Redis first**: ``frames:{robot}:{session}:{frame}`` hashes hold presigned URLs
   (``url:<name>``) the Redis sink (or an earlier request) signed;
2. **then MongoDB**: ``frames_metadata`` documents hold ``s3_urls.<name>`` (``s3://bucket/key``)
   which are presigned here (``s3.presign_expiry_s``, against ``s3.endpoint``);
3. **caches updated**: newly signed URLs go back to the Redis hash (TTL ``redis.frame_ttl_s``)
   and the document is marked ``cached`` with its ``cache_expiry``.

A URL name is an image kind (``rgb``, ``depth``, ``pointcloud``: the robot's own frame), a
kind and a compaction tier (``rgb_original``, ``rgb_preview``, ``rgb_thumbnail``) or
``thumbnail``. ``tier`` picks, per kind, the best name available (see :data:`TIER_PREFERENCE`).
A URL with less than :func:`min_validity_s` left is signed again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from aiohttp import web

from robostream.api.context import ApiContext, context_of
from robostream.api.errors import ApiError, not_found
from robostream.api.params import (
    QueryParams,
    checked_id,
    choice_spec,
    id_spec,
    int_spec,
    micros_to_datetime,
    micros_to_iso,
    time_spec,
)
from robostream.api.sessions import find_session, json_response, session_span_us
from robostream.api.stores import url_expiry_s
from robostream.sinks import keys
from robostream.times import DAY_US

TIERS = ("original", "preview", "thumbnail")
KINDS = ("rgb", "depth", "pointcloud")
DEFAULT_LIMIT = 100
PRESIGN_IN_THREAD_ABOVE = 20
SLICE_US = 60_000_000
MS_US = 1000

#: URL names to try, best first, for a kind and a tier (``{k}`` is the kind).
TIER_PREFERENCE: dict[str, tuple[str, ...]] = {
    "original": ("{k}", "{k}_original", "{k}_preview", "{k}_thumbnail", "thumbnail"),
    "preview": ("{k}_preview", "{k}", "{k}_original", "{k}_thumbnail", "thumbnail"),
    "thumbnail": ("{k}_thumbnail", "thumbnail", "{k}_preview", "{k}", "{k}_original"),
}
_TIER = choice_spec(TIERS, "resolution tier", default="original")


class FramesParams(QueryParams):
    """``GET /v1/frames``."""

    robot: Annotated[str, id_spec("robot")]
    session: Annotated[str, id_spec("session")]
    camera: Annotated[str | None, id_spec("camera", required=False)]
    kind: Annotated[str | None, choice_spec(KINDS, "only this image kind (default: every kind)")]
    tier: Annotated[str, _TIER]
    from_: Annotated[int | None, time_spec("first frame time")]
    to: Annotated[int | None, time_spec("last frame time")]
    limit: Annotated[int, int_spec("most items to return", default=DEFAULT_LIMIT, limit="frames_limit")]


class FrameParams(QueryParams):
    """``GET /v1/frames/{id}``."""

    kind: Annotated[str, choice_spec(KINDS, "image kind", default="rgb")]
    tier: Annotated[str, _TIER]


def min_validity_s(expiry_s: int) -> float:
    """A cached URL with less than this left is signed again (the client needs time to use it)."""
    return min(300.0, expiry_s / 2)


def kinds_of(names: set[str]) -> list[str]:
    """Image kinds a frame has URLs for (a lone ``thumbnail`` belongs to ``rgb``)."""
    kinds = {name.split("_", 1)[0] for name in names}
    if "thumbnail" in kinds:
        kinds.discard("thumbnail")
        kinds.add("rgb")
    return sorted(kinds)


def pick_name(names: set[str], kind: str, tier: str) -> str | None:
    """The URL name that serves ``kind`` at ``tier`` best, among ``names``."""
    for pattern in TIER_PREFERENCE[tier]:
        name = pattern.format(k=kind)
        if name == "thumbnail" and kind != "rgb":
            continue
        if name in names:
            return name
    return None


def frame_api_id(robot_id: str, session_id: str, frame_id: str) -> str:
    """The id ``GET /v1/frames/{id}`` takes: ``<robot>:<session>:<camera>-<timestamp µs>``."""
    return f"{robot_id}:{session_id}:{frame_id}"


def parse_frame_api_id(value: str) -> tuple[str, str, str, int]:
    """``robot:session:camera-ts`` -> checked ``(robot, session, camera, ts)``; 400 otherwise."""
    parts = value.split(":")
    camera, _, stamp = parts[-1].rpartition("-") if len(parts) == 3 else ("", "", "")
    if len(parts) != 3 or not camera or not stamp.isdigit() or len(stamp) > 19:
        raise ApiError(400, "invalid_id", f"invalid frame id {value!r}: expected "
                       "<robot_id>:<session_id>:<camera_id>-<timestamp µs>")
    return (checked_id(parts[0], "robot_id"), checked_id(parts[1], "session_id"),
            checked_id(camera, "camera_id"), int(stamp))


@dataclass
class CachedFrame:
    """A ``frames:`` hash: its presigned URLs and, when the API wrote it, every name the frame
    has (``names``: a hash holding only some of them must not hide a better-fitting one)."""

    urls: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)


@dataclass
class FrameView:
    """One frame being answered: its document, cached URLs and what is still to sign."""

    doc: dict[str, Any]
    cached: CachedFrame
    chosen: dict[str, str] = field(default_factory=dict)  # kind -> URL name
    urls: dict[str, str] = field(default_factory=dict)  # URL name -> URL
    signed: dict[str, str] = field(default_factory=dict)  # URL name -> newly signed URL

    @property
    def redis_key(self) -> str:
        d = self.doc
        return keys.frame_key(d["robot_id"], d["session_id"], d["camera_id"], int(d["timestamp_us"]))


def parse_frame_hash(hash_fields: dict[Any, Any]) -> CachedFrame:
    """``url:<name>`` and ``names`` fields of a frame hash."""
    cached = CachedFrame()
    for key, value in hash_fields.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        text = value.decode() if isinstance(value, bytes) else str(value)
        if name.startswith("url:"):
            cached.urls[name[4:]] = text
        elif name == "names":
            cached.names = {n for n in text.split(",") if n}
    return cached


def _still_valid(url: str, now: float, margin: float) -> bool:
    expiry = url_expiry_s(url)
    return expiry is not None and expiry - now >= margin


def resolve_urls(ctx: ApiContext, views: list[FrameView], kind: str | None, tier: str) -> None:
    """Choose each frame's URL names and take valid cached URLs; the rest go to ``signed``."""
    now, margin = time.time(), min_validity_s(ctx.settings.s3.presign_expiry_s)
    for view in views:
        stored = {k for k, v in (view.doc.get("s3_urls") or {}).items() if isinstance(v, str)}
        names = stored | set(view.cached.urls) | view.cached.names
        for k in ([kind] if kind else kinds_of(names)):
            name = pick_name(names, k, tier)
            if name is None:
                continue
            view.chosen[k] = name
            cached = view.cached.urls.get(name)
            if cached is not None and _still_valid(cached, now, margin):
                view.urls[name] = cached
            elif name in stored:
                view.signed[name] = ""


def sign_missing(ctx: ApiContext, views: list[FrameView]) -> None:
    """Presign every URL that was not (validly) cached (CPU only: no network)."""
    presigner = ctx.stores.presigner
    for view in views:
        for name in view.signed:
            view.signed[name] = presigner.get_url_for(view.doc["s3_urls"][name])
            view.urls[name] = view.signed[name]


async def update_caches(ctx: ApiContext, views: list[FrameView]) -> None:
    """Newly signed URLs to the Redis hashes (with TTL); documents marked ``cached``."""
    fresh = [v for v in views if v.signed]
    if not fresh:
        return
    ttl = ctx.settings.redis.frame_ttl_s
    pipe = ctx.stores.redis.pipeline(transaction=False)
    for view in fresh:
        d = view.doc
        mapping: dict[Any, Any] = {
            f"url:{name}": url for name, url in view.signed.items()}
        mapping["names"] = ",".join(sorted(d.get("s3_urls") or {}))
        mapping.update(robot_id=d["robot_id"], session_id=d["session_id"], camera_id=d["camera_id"],
                       frame_id=d["frame_id"], timestamp_us=int(d["timestamp_us"]))
        pipe.hset(view.redis_key, mapping=mapping)
        pipe.expire(view.redis_key, ttl)
    await pipe.execute()
    now = datetime.now(UTC)
    await ctx.stores.db.frames_metadata.update_many(
        {"_id": {"$in": [v.doc["_id"] for v in fresh]}},
        {"$set": {"cached": True, "cache_expiry": now + timedelta(seconds=ttl)}})


async def hot_load(ctx: ApiContext, views: list[FrameView], kind: str | None, tier: str) -> str:
    """Redis first, then presigning, then cache updates; returns the source (redis|presigned|mixed)."""
    resolve_urls(ctx, views, kind, tier)
    missing = sum(len(v.signed) for v in views)
    if missing > PRESIGN_IN_THREAD_ABOVE:
        await asyncio.to_thread(sign_missing, ctx, views)
    else:
        sign_missing(ctx, views)
    await update_caches(ctx, views)
    cached = sum(len(v.urls) for v in views) - missing
    return "presigned" if not cached and missing else ("mixed" if missing else "redis")


def frame_json(view: FrameView, tier: str) -> dict[str, Any]:
    d = view.doc
    ts = int(d["timestamp_us"])
    urls = {k: view.urls[name] for k, name in view.chosen.items() if name in view.urls}
    expiries = [e for e in (url_expiry_s(u) for u in urls.values()) if e is not None]
    api_id = frame_api_id(d["robot_id"], d["session_id"], d["frame_id"])
    return {
        "id": api_id, "frame_id": d["frame_id"], "robot_id": d["robot_id"],
        "session_id": d["session_id"], "camera_id": d["camera_id"],
        "timestamp": micros_to_iso(ts), "timestamp_us": ts,
        "metadata": d.get("metadata") or {}, "kinds": sorted(view.chosen), "tier": tier,
        "urls": urls, "url_names": {k: n for k, n in view.chosen.items() if n in view.urls},
        "expires_at": micros_to_iso(int(min(expiries) * 1_000_000)) if expiries else None,
        "href": f"/v1/frames/{api_id}",
    }


async def _cached_hashes(ctx: ApiContext, docs: list[dict[str, Any]]) -> list[CachedFrame]:
    pipe = ctx.stores.redis.pipeline(transaction=False)
    for d in docs:
        pipe.hgetall(keys.frame_key(d["robot_id"], d["session_id"], d["camera_id"], int(d["timestamp_us"])))
    return [parse_frame_hash(h) for h in await pipe.execute()] if docs else []


_PROJECTION = {"robot_id": 1, "session_id": 1, "camera_id": 1, "frame_id": 1, "timestamp_us": 1,
               "metadata": 1, "s3_urls": 1}


async def list_frames(request: web.Request) -> web.Response:
    """``GET /v1/frames?robot=&session=&from=&to=&camera=&kind=&tier=&limit=``."""
    ctx = context_of(request)
    params = FramesParams.parse(request.query, ctx.settings.api)
    robot_id, session_id, camera, kind, tier = (params.robot, params.session, params.camera,
                                                params.kind, params.tier)
    start_us, end_us, limit = params.from_, params.to, params.limit
    where: dict[str, Any] = {"robot_id": robot_id, "session_id": session_id}
    if camera:
        where["camera_id"] = camera
    if start_us is None and end_us is None:
        docs = await newest_frames(ctx, where, limit)
    else:
        lo, hi = await frame_range(ctx, robot_id, session_id, start_us, end_us)
        docs = await frames_forward(ctx, where, lo, hi, limit)
    views = [FrameView(d, c) for d, c in zip(docs, await _cached_hashes(ctx, docs), strict=True)]
    source = await hot_load(ctx, views, kind, tier)
    return json_response({"robot_id": robot_id, "session_id": session_id, "tier": tier,
                          "source": source, "frames": [frame_json(v, tier) for v in views]})


async def _find(ctx: ApiContext, where: dict[str, Any], lo: int, hi: int, limit: int,
                direction: int) -> list[dict[str, Any]]:
    span = {"$gte": micros_to_datetime(lo), "$lt": micros_to_datetime(hi)}
    cursor = ctx.stores.db.frames_metadata.find({**where, "timestamp": span}, _PROJECTION).sort(
        "timestamp", direction).limit(limit)
    return [d for d in await cursor.to_list(None) if _complete(d)]


async def frame_range(ctx: ApiContext, robot_id: str, session_id: str, start_us: int | None,
                      end_us: int | None) -> tuple[int, int]:
    """The request's range, with open ends closed by the session's span."""
    doc = await find_session(ctx.stores, robot_id, session_id)
    first, last = session_span_us(doc) if doc is not None else (None, None)
    lo = start_us if start_us is not None else (first or 0)
    hi = end_us + 1 if end_us is not None else (last or lo) + MS_US
    return lo, max(lo, hi)


async def frames_forward(ctx: ApiContext, where: dict[str, Any], lo: int, hi: int,
                         limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` frames of ``[lo, hi)``, read in growing time slices (bounded reads)."""
    out: list[dict[str, Any]] = []
    length = SLICE_US
    while lo < hi and len(out) < limit:
        top = min(hi, lo + length)
        out += await _find(ctx, where, lo, top, limit - len(out), 1)
        lo, length = top, length * 2
    return out


async def newest_frames(ctx: ApiContext, where: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` frames of the session (oldest first), reading back from its last
    activity in growing slices."""
    doc = await find_session(ctx.stores, where["robot_id"], where["session_id"])
    first, last = session_span_us(doc) if doc is not None else (None, None)
    if last is None:
        return []
    floor = (first - SLICE_US) if first is not None else last - ctx.settings.mongo.hot_retention_days * DAY_US
    hi, length = last + MS_US, SLICE_US  # MongoDB keeps milliseconds: last_seen is rounded down
    out: list[dict[str, Any]] = []
    while hi > floor and len(out) < limit:
        lo = max(floor, hi - length)
        out += await _find(ctx, where, lo, hi, limit - len(out), -1)
        hi, length = lo, length * 2
    out.reverse()
    return out


def _complete(doc: dict[str, Any]) -> bool:
    return all(isinstance(doc.get(k), str) for k in ("robot_id", "session_id", "camera_id", "frame_id")) \
        and isinstance(doc.get("timestamp_us"), int)


async def _frame_view(ctx: ApiContext, robot: str, session: str, camera: str, ts: int,
                      kind: str, tier: str) -> FrameView | None:
    """The frame from Redis if its hash has a valid URL for (kind, tier), else from MongoDB."""
    cached = parse_frame_hash(await ctx.stores.redis.hgetall(keys.frame_key(robot, session, camera, ts)))
    hot = FrameView({"robot_id": robot, "session_id": session, "camera_id": camera,
                     "frame_id": keys.frame_id(camera, ts), "timestamp_us": ts}, cached)
    resolve_urls(ctx, [hot], kind, tier)
    if kind in hot.chosen and hot.chosen[kind] in hot.urls:
        return hot
    doc = await ctx.stores.db.frames_metadata.find_one(
        {"_id": keys.frame_doc_id(robot, session, camera, ts)}, _PROJECTION)
    if doc is None or not _complete(doc):
        return None
    view = FrameView(doc, cached)
    await hot_load(ctx, [view], kind, tier)
    return view


async def get_frame(request: web.Request) -> web.StreamResponse:
    """``GET /v1/frames/{id}?kind=&tier=``: ``307`` to the presigned URL of the image."""
    ctx = context_of(request)
    robot, session, camera, ts = parse_frame_api_id(request.match_info["id"])
    params = FrameParams.parse(request.query, ctx.settings.api)
    kind, tier = params.kind, params.tier
    view = await _frame_view(ctx, robot, session, camera, ts, kind, tier)
    if view is None:
        raise not_found(f"no frame {request.match_info['id']!r}")
    name = view.chosen.get(kind)
    if name is None or name not in view.urls:
        raise not_found(f"frame {request.match_info['id']!r} has no {kind} image")
    raise web.HTTPTemporaryRedirect(view.urls[name], headers={"Cache-Control": "no-store"})

