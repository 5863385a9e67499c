"""``GET /v1/telemetry``: a time range streamed from MongoDB cursors as NDJSON or MessagePack.

Rows, one per line (NDJSON) or one MessagePack map after the other:

* **raw** (every point, or one point per bucket when ``max_points`` asks for fewer points and no
  aggregation is fine enough): the sinks' point, ``{"seq", "i", "ts_us", "values": {metric:
  value}}``, in time order;
* **aggregations** (``max_points`` over a range where the pre-computed 1m/1h windows are at
  least as fine as the buckets asked): ``{"ts_us", "end_us", "values": {metric: mean}, "min":
  {...}, "max": {...}, "count": {...}}``, windows merged into buckets of whole windows.

``X-Robostream-Source`` says which (``raw``, ``raw-decimated``, ``aggregations``),
``X-Robostream-Resolution`` the windows used, ``X-Robostream-Bucket-Us`` the bucket length. A
failure after the first bytes ends the stream with ``{"error": {"code", "message"}}``.

The range is read in time slices (``api.history_slice_s``; an empty slice doubles the next one)
so the first bytes leave after the first slice, whatever the length of the range, and memory
stays bounded; points of overlapping documents (streams at different rates) are merged into
time order. Conversion runs in small steps between which the event loop serves others.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack
import orjson
from aiohttp import web
from pymongo.errors import PyMongoError

from robostream.api.context import ApiContext, context_of
from robostream.api.cors import CORS_HEADERS
from robostream.api.errors import ApiError, not_found
from robostream.api.params import (
    datetime_to_us,
    id_param,
    int_param,
    list_param,
    metric_name,
    micros_to_datetime,
    time_range,
)
from robostream.api.sessions import MAX_DOC_SPAN_US, find_session, session_span_us
from robostream.api.stats import RESOLUTION_US
from robostream.processors import TelemetryBucket
from robostream.sinks.points import points as bucket_points

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
MSGPACK = "application/msgpack"
_ACCEPTED = {
    "application/x-ndjson": NDJSON, "application/ndjson": NDJSON, "application/jsonl": NDJSON,
    "application/json-seq": NDJSON, "application/msgpack": MSGPACK,
    "application/x-msgpack": MSGPACK, "application/vnd.msgpack": MSGPACK,
    "*/*": NDJSON, "application/*": NDJSON,
}
FORMATS = {"ndjson": NDJSON, "msgpack": MSGPACK}
#: Aggregation resolutions MongoDB may hold, finest first.
AGG_RESOLUTIONS = ("1s", "1m", "1h")
CURSOR_BATCH = 200
STEP_DOCS = 50  # documents converted between two yields to the event loop
FLUSH_BYTES = 64 * 1024
#: Points may precede a session's start event by this much (clocks): reads start that early.
SESSION_MARGIN_US = 3_600_000_000
MINUTE_US = 60_000_000
#: Batches of rows, as they are read (closed early when the client goes away).
Rows = AsyncGenerator[list[dict[str, Any]], None]
_TELEMETRY_FIELDS = {"_id": 0, "seq": 1, "timestamp_us": 1, "t": 1, "indexes": 1,
                     "bucket_hour": 1, "bucket_minute": 1, "robot_id": 1, "session_id": 1}


# -- negotiation and parameters --------------------------------------------------------------------


def negotiate(accept: str | None, fmt: str | None) -> str:
    """NDJSON or MessagePack: ``?format=`` wins, then ``Accept`` (q-values honoured)."""
    if fmt:
        if fmt not in FORMATS:
            raise ApiError(400, "invalid_parameter", f"format={fmt!r}: expected ndjson or msgpack")
        return FORMATS[fmt]
    if not accept or not accept.strip():
        return NDJSON
    offers = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        offers.append((-quality, position, media.lower()))
    for neg_quality, _, media in sorted(offers):
        if neg_quality < 0 and media in _ACCEPTED:
            return _ACCEPTED[media]
    raise ApiError(406, "not_acceptable", f"telemetry is served as {NDJSON} or {MSGPACK} "
                   "(Accept header or ?format=ndjson|msgpack)")


@dataclass(frozen=True)
class TelemetryQuery:
    robot_id: str
    session_id: str
    start_us: int
    end_us: int  # exclusive
    fields: tuple[str, ...]
    max_points: int | None

    @property
    def bucket_us(self) -> int | None:
        """Bucket length that keeps the answer within ``max_points`` rows."""
        if self.max_points is None:
            return None
        return max(1, math.ceil((self.end_us - self.start_us) / self.max_points))


@dataclass(frozen=True)
class Plan:
    source: str  # raw | raw-decimated | aggregations
    bucket_us: int | None = None
    resolution: str | None = None


# -- documents -> points ---------------------------------------------------------------------------


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, list[float]]:
    """``{"pose": {"position": {"x": [...]}}}`` -> ``{"pose.position.x": [...]}`` (the inverse of
    the sinks' :func:`robostream.sinks.points.nested`)."""
    out: dict[str, list[float]] = {}
    for name, value in nested.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def bucket_of(doc: dict[str, Any], robot_id: str, session_id: str) -> TelemetryBucket:
    """The processors' bucket a ``telemetry`` document was made from (one slice of one record)."""
    base = int(doc["timestamp_us"])
    stamps = [base + int(t) for t in doc["t"]]
    return TelemetryBucket(
        robot_id=robot_id, session_id=session_id,
        bucket_hour=_us(doc.get("bucket_hour")), bucket_minute=_us(doc.get("bucket_minute")),
        timestamps=stamps, seqs=[int(doc["seq"])] * len(stamps),
        indexes=doc.get("indexes") or list(range(len(stamps))),
        values=flatten(doc.get("values") or {}),
    )


def _us(value: Any) -> int:
    return datetime_to_us(value) if isinstance(value, datetime) else int(value or 0)


def doc_points(doc: dict[str, Any], query: TelemetryQuery) -> list[dict[str, Any]]:
    """The document's points within the query range (points without values dropped)."""
    points = bucket_points(bucket_of(doc, query.robot_id, query.session_id))
    return [p for p in points if query.start_us <= p["ts_us"] < query.end_us and p["values"]]


def _key(point: dict[str, Any]) -> tuple[int, int, int]:
    return point["ts_us"], point["seq"], point["i"]


class TimeOrder:
    """Merges points of documents read in ``timestamp`` order into strict time order.

    A document starting at T cannot hold points before T, so pending points before T are final.
    """

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []

    def add(self, doc_start_us: int, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add one document's points; return the points now known to be in order."""
        cut = bisect.bisect_left([p["ts_us"] for p in self.pending], doc_start_us) if self.pending else 0
        ready, rest = self.pending[:cut], self.pending[cut:]
        self.pending = sorted(rest + points, key=_key) if rest else points
        return ready

    def flush(self) -> list[dict[str, Any]]:
        ready, self.pending = self.pending, []
        return ready


class Decimator:
    """Keeps the first point of every bucket of ``bucket_us`` from ``start_us``."""

    def __init__(self, start_us: int, bucket_us: int) -> None:
        self.start, self.bucket, self.last = start_us, bucket_us, -1

    def keep(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for point in points:
            index = (point["ts_us"] - self.start) // self.bucket
            if index > self.last:
                self.last = index
                out.append(point)
        return out


# -- reading MongoDB in slices ---------------------------------------------------------------------


def slice_us(ctx: ApiContext) -> int:
    return int(ctx.settings.api.history_slice_s * 1_000_000)


def telemetry_projection(fields: tuple[str, ...]) -> dict[str, Any]:
    projection = dict(_TELEMETRY_FIELDS)
    for name in fields or ("",):
        projection[f"values.{name}" if name else "values"] = 1
    return projection


def telemetry_filter(query: TelemetryQuery, lo_us: int, hi_us: int) -> dict[str, Any]:
    """Documents starting in ``[lo, hi)`` (the compound index's range; the projection picks the
    fields: an ``$exists`` filter would cost SecantusDB a scan of every document)."""
    span = {"$gte": micros_to_datetime(lo_us), "$lt": micros_to_datetime(hi_us)}
    return {"robot_id": query.robot_id, "session_id": query.session_id, "timestamp": span}


async def sliced(first_us: int, end_us: int, base: int, read: Callable[[int, int], Any],
                 ) -> Rows:
    """Read ``[first_us, end_us)`` in slices of ``base`` µs (an empty slice doubles the next one);
    the next slice is fetched while the current one is being answered."""
    length, lo = base, first_us
    pending: asyncio.Task[list[dict[str, Any]]] | None = None
    try:
        while lo < end_us or pending is not None:
            if pending is None:
                hi = min(end_us, lo + length)
                pending = asyncio.ensure_future(read(lo, hi))
                lo = hi
            docs = await pending
            pending = None
            length = base if docs else length * 2
            if lo < end_us:  # prefetch the next slice
                hi = min(end_us, lo + length)
                pending = asyncio.ensure_future(read(lo, hi))
                lo = hi
            if docs:
                yield docs
    finally:
        if pending is not None:
            pending.cancel()


async def raw_rows(ctx: ApiContext, query: TelemetryQuery, plan: Plan) -> Rows:
    """Points in time order (decimated to one per bucket for ``raw-decimated``)."""
    collection = ctx.stores.db.telemetry
    projection = telemetry_projection(query.fields)

    async def read(lo: int, hi: int) -> list[dict[str, Any]]:
        cursor = collection.find(telemetry_filter(query, lo, hi), projection).sort(
            "timestamp", 1).batch_size(CURSOR_BATCH)
        return await cursor.to_list(None)

    order = TimeOrder()
    decimator = Decimator(query.start_us, plan.bucket_us) if plan.bucket_us else None
    base = slice_us(ctx)
    # a document holds the points of one record within one minute: a document with points at or
    # after start_us starts in start_us's minute or later
    first = query.start_us - query.start_us % MINUTE_US
    async for docs in sliced(first, query.end_us, base, read):
        for start in range(0, len(docs), STEP_DOCS):
            rows: list[dict[str, Any]] = []
            for doc in docs[start:start + STEP_DOCS]:
                rows += order.add(int(doc["timestamp_us"]), doc_points(doc, query))
            yield decimator.keep(rows) if decimator else rows
    rows = order.flush()
    yield decimator.keep(rows) if decimator else rows


# -- aggregations ----------------------------------------------------------------------------------


def metric_filter(fields: tuple[str, ...]) -> dict[str, Any]:
    if not fields:
        return {}
    alternatives = "|".join(name.replace(".", r"\.") for name in fields)
    return {"metric": {"$regex": f"^(?:{alternatives})(?:\\.|$)"}}


def merge_windows(windows: list[dict[str, Any]], bucket_start: int, bucket_end: int) -> dict[str, Any]:
    """One row from the aggregation documents of one bucket (several metrics, several windows)."""
    count: dict[str, int] = {}
    weighted: dict[str, float] = {}
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for w in windows:
        metric, n = w["metric"], int(w.get("count") or 0)
        if n <= 0 or w.get("mean") is None:
            continue
        count[metric] = count.get(metric, 0) + n
        weighted[metric] = weighted.get(metric, 0.0) + float(w["mean"]) * n
        low[metric] = min(low.get(metric, math.inf), float(w["min"]))
        high[metric] = max(high.get(metric, -math.inf), float(w["max"]))
    values = {m: weighted[m] / count[m] for m in sorted(count)}
    return {"ts_us": bucket_start, "end_us": bucket_end, "values": values,
            "min": {m: low[m] for m in values}, "max": {m: high[m] for m in values},
            "count": {m: count[m] for m in values}}


def aggregation_docs(ctx: ApiContext, query: TelemetryQuery, plan: Plan,
                     ) -> Rows:
    """The ``aggregations`` documents of the plan's resolution over the range, slice by slice."""
    assert plan.resolution is not None and plan.bucket_us is not None
    collection = ctx.stores.db.aggregations
    where_base = {"robot_id": query.robot_id, "session_id": query.session_id,
                  "resolution": plan.resolution, **metric_filter(query.fields)}
    projection = {"_id": 0, "metric": 1, "window_start": 1, "count": 1, "mean": 1, "min": 1, "max": 1}

    async def read(lo: int, hi: int) -> list[dict[str, Any]]:
        span = {"$gte": micros_to_datetime(lo), "$lt": micros_to_datetime(hi)}
        where = {**where_base, "window_start": span}
        return await collection.find(where, projection).sort("window_start", 1).to_list(None)

    first = query.start_us - query.start_us % plan.bucket_us
    base = max(slice_us(ctx), 60 * RESOLUTION_US[plan.resolution])
    return sliced(first, query.end_us, base, read)


async def aggregation_rows(plan: Plan, first: list[dict[str, Any]],
                           rest: Rows) -> Rows:
    """Buckets of whole windows (``plan.bucket_us`` is a multiple of the resolution)."""
    assert plan.bucket_us is not None
    size = plan.bucket_us
    current: int | None = None
    group: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] | None = first
    try:
        while batch is not None:
            rows = []
            for doc in batch:
                start = _us(doc["window_start"])
                bucket = start - start % size
                if current is not None and bucket != current:
                    rows.append(merge_windows(group, current, current + size))
                    group = []
                current = bucket
                group.append(doc)
            yield [r for r in rows if r["values"]]
            batch = await anext(rest, None)
    finally:
        await rest.aclose()
    if group and current is not None:
        row = merge_windows(group, current, current + size)
        yield [row] if row["values"] else []


async def plan_rows(ctx: ApiContext, query: TelemetryQuery,
                    ) -> tuple[Plan, Rows]:
    """Every point; else the coarsest aggregation at least as fine as the buckets that MongoDB
    holds over the range (found by reading its first non-empty slice, which is then streamed);
    else one point per bucket."""
    bucket = query.bucket_us
    if bucket is None:
        plan = Plan("raw")
        return plan, raw_rows(ctx, query, plan)
    for resolution in reversed(AGG_RESOLUTIONS):
        size = RESOLUTION_US[resolution]
        if size > bucket:
            continue
        plan = Plan("aggregations", math.ceil(bucket / size) * size, resolution)
        docs = aggregation_docs(ctx, query, plan)
        first = await anext(docs, None)
        if first is not None:
            return plan, aggregation_rows(plan, first, docs)
    plan = Plan("raw-decimated", bucket)
    return plan, raw_rows(ctx, query, plan)


# -- the route -------------------------------------------------------------------------------------


def encoder(media: str) -> Callable[[list[dict[str, Any]]], bytes]:
    if media == MSGPACK:
        pack = msgpack.Packer(use_bin_type=True).pack
        return lambda rows: b"".join(pack(r) for r in rows)
    return lambda rows: b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows)


async def resolve_range(ctx: ApiContext, robot_id: str, session_id: str, start_us: int | None,
                        end_us: int | None) -> tuple[int, int]:
    """The range to read: the request's, clamped to what the session holds.

    The ``sessions`` document says when the session started (its start event) and the newest
    document the sinks landed (``stats.last_seen``); MongoDB is never asked an open-ended
    question over a session's telemetry (SecantusDB answers those by reading everything).
    """
    doc = await find_session(ctx.stores, robot_id, session_id)
    if doc is None:
        raise not_found(f"no session {session_id!r} of robot {robot_id!r}")
    first, last = session_span_us(doc)
    if start_us is None and first is None:
        raise ApiError(400, "missing_parameter",
                       "this session has no start time (no session start event landed): give from=")
    lo = start_us if start_us is not None else max(0, (first or 0) - MAX_DOC_SPAN_US)
    if first is not None:
        lo = max(lo, first - SESSION_MARGIN_US)
    newest = (last if last is not None else lo) + MAX_DOC_SPAN_US + 1
    hi = end_us if end_us is not None else newest
    if last is not None and doc.get("status") != "running":
        hi = min(hi, newest)
    return lo, max(lo, hi)


async def parse_query(ctx: ApiContext, request: web.Request) -> TelemetryQuery:
    query = request.query
    robot_id, session_id = id_param(query, "robot"), id_param(query, "session")
    assert robot_id is not None and session_id is not None
    fields = tuple(metric_name(f, "fields") for f in list_param(query, "fields"))
    api = ctx.settings.api
    max_points = int_param(query, "max_points", api.default_max_points, high=api.max_points_limit)
    start_us, end_us = time_range(query)
    lo, hi = await resolve_range(ctx, robot_id, session_id, start_us, end_us)
    return TelemetryQuery(robot_id, session_id, lo, hi, fields, max_points)


async def get_telemetry(request: web.Request) -> web.StreamResponse:
    """``GET /v1/telemetry?robot=&session=&from=&to=&fields=&max_points=&format=``."""
    ctx = context_of(request)
    media = negotiate(request.headers.get("Accept"), request.query.get("format"))
    query = await parse_query(ctx, request)
    plan, rows = await plan_rows(ctx, query)
    headers = {"X-Robostream-Source": plan.source, "Cache-Control": "no-store",
               **request.get(CORS_HEADERS, {})}
    if plan.resolution:
        headers["X-Robostream-Resolution"] = plan.resolution
    if plan.bucket_us:
        headers["X-Robostream-Bucket-Us"] = str(plan.bucket_us)
    response = web.StreamResponse(headers=headers)
    response.content_type = media
    response.enable_chunked_encoding()
    await response.prepare(request)
    await stream_rows(ctx, response, rows, encoder(media))
    return response


async def stream_rows(ctx: ApiContext, response: web.StreamResponse,
                      rows: Rows,
                      encode: Callable[[list[dict[str, Any]]], bytes]) -> None:
    """Write rows as they come (chunks of ~64 KiB); a store failure ends with an error row."""
    stats = ctx.history
    stats.open_streams += 1
    stats.streams += 1
    stats.first_write_at = stats.reads_done_at = None
    buffer: list[bytes] = []
    size = 0
    try:
        async for batch in rows:
            if not batch:
                continue
            chunk = encode(batch)
            stats.rows_sent += len(batch)
            buffer.append(chunk)
            size += len(chunk)
            if size >= FLUSH_BYTES:
                await response.write(b"".join(buffer))
                buffer, size = [], 0
                stats.first_write_at = stats.first_write_at or time.monotonic()
            else:
                await asyncio.sleep(0)  # let the live view and other requests in
        stats.reads_done_at = time.monotonic()
        if buffer:
            await response.write(b"".join(buffer))
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        raise  # the client went away: nothing to tell it
    except PyMongoError as exc:
        log.warning("telemetry stream failed: %s: %s", type(exc).__name__, exc)
        error = {"error": {"code": "store_unavailable", "message": f"MongoDB failed: {type(exc).__name__}"}}
        await response.write(b"".join(buffer) + encode([error]))
        await response.write_eof()
    finally:
        stats.open_streams -= 1
        await rows.aclose()  # stops the slice being prefetched

