"""``GET /v1/telemetry``: a time range from the minute buckets or the level-of-detail pyramid.

Telemetry is stored as columnar minute buckets and a min/max pyramid (1 s, 10 s, 1 min, 1 h
bins; :mod:`robostream.sinks.buckets`). A query reads few, large documents, selects ``fields``
by projection (nothing else is decoded) and answers in one of three formats:

* ``columns`` (``application/vnd.robostream.columns+msgpack``): MessagePack maps, one per
  stored document (a minute of one channel group, or a run of pyramid bins), whose columns are
  packed little-endian arrays (``bin``): ``numpy.frombuffer`` and a browser's ``Float64Array``
  read them without per-point parsing;
* ``ndjson`` (the default) and ``msgpack``: one row per point or per bucket, as before --
  **raw** ``{"seq", "i", "ts_us", "values": {metric: value}}`` in time order, **lod**
  ``{"ts_us", "end_us", "values": {metric: mean}, "min", "max", "count"}``.

``max_points=N`` picks the coarsest pyramid level with at least ``N`` bins over the range and
merges whole bins into at most ``N`` buckets (min and max per bucket: a one-sample spike stays
visible); when even the 1 s level has fewer bins, the raw points are answered if there are at
most ``RAW_FACTOR * N`` of them (counted from the 1 s bins), else the 1 s level.
``X-Robostream-Source`` says which (``raw`` or ``lod``), ``X-Robostream-Level`` the level,
``X-Robostream-Bucket-Us`` the bucket length.
A failure after the first bytes ends the stream with ``{"error": {"code", "message"}}``.

Raw minutes are read in time slices (``api.history_slice_s``; an empty slice doubles the next
one), so the first bytes leave after the first slice and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgpack
import numpy as np
import orjson
from aiohttp import web
from pymongo.errors import PyMongoError

from robostream.api.context import ApiContext, context_of
from robostream.api.cors import CORS_HEADERS
from robostream.api.errors import ApiError, not_found
from robostream.api.params import (
    QueryParams,
    id_spec,
    int_spec,
    list_spec,
    metric_name,
    micros_to_datetime,
    text_spec,
    time_spec,
)
from robostream.api.sessions import MAX_DOC_SPAN_US, find_session, session_span_us
from robostream.sinks.buckets import (
    COUNT,
    F8,
    I4,
    I8,
    LEVELS,
    LOD_SPAN_US,
    MAX,
    MEAN,
    MIN,
    MINUTE_US,
    LodSpan,
    Minute,
    combine,
    empty_stats,
)

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
MSGPACK = "application/msgpack"
COLUMNS = "application/vnd.robostream.columns+msgpack"
_ACCEPTED = {
    "application/x-ndjson": NDJSON, "application/ndjson": NDJSON, "application/jsonl": NDJSON,
    "application/json-seq": NDJSON, "application/msgpack": MSGPACK,
    "application/x-msgpack": MSGPACK, "application/vnd.msgpack": MSGPACK, COLUMNS: COLUMNS,
    "*/*": NDJSON, "application/*": NDJSON,
}
FORMATS = {"ndjson": NDJSON, "msgpack": MSGPACK, "columns": COLUMNS}
FLUSH_BYTES = 64 * 1024
#: Points may precede a session's start event by this much (clocks): reads start that early.
SESSION_MARGIN_US = 3_600_000_000
#: Below the 1 s level, raw points are answered when there are at most this many per max_points.
RAW_FACTOR = 10
#: Most pyramid bins one answer merges (max_points up to ~20,000 always fit).
MAX_LOD_BINS = 200_000
_MINUTE_HEAD = {"_id": 0, "robot_id": 1, "session_id": 1, "group": 1, "timestamp_us": 1, "channels": 1}
_LOD_HEAD = {"_id": 0, "robot_id": 1, "session_id": 1, "group": 1, "level": 1, "span_start_us": 1,
             "bins": 1, "channels": 1}
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


def _metric_names(names: list[str]) -> list[str]:
    return [metric_name(name, "fields") for name in names]


class TelemetryParams(QueryParams):
    """``GET /v1/telemetry`` (``format`` is checked with the Accept header by :func:`negotiate`)."""

    format: Annotated[str | None, text_spec("overrides the Accept header",
                                            {"type": "string", "enum": list(FORMATS)})]
    robot: Annotated[str, id_spec("robot")]
    session: Annotated[str, id_spec("session")]
    fields: Annotated[tuple[str, ...], list_spec(
        "comma-separated metric names or prefixes (default: every metric)", "pose,joints.angle",
        _metric_names)]
    max_points: Annotated[int | None, int_spec("at most this many rows (downsampled)",
                                               default_from="default_max_points", limit="max_points_limit")]
    from_: Annotated[int | None, time_spec("first instant (inclusive)")]
    to: Annotated[int | None, time_spec("end (exclusive)")]


@dataclass(frozen=True)
class TelemetryQuery:
    robot_id: str
    session_id: str
    start_us: int
    end_us: int  # exclusive
    fields: tuple[str, ...]
    max_points: int | None


@dataclass(frozen=True)
class Plan:
    source: str  # raw | lod
    bucket_us: int | None = None
    level: str | None = None


# -- reading -----------------------------------------------------------------------------------------


Block = list[dict[str, Any]]
#: Batches of answer items, as they are read (closed early when the client goes away).
Items = AsyncGenerator["list[Minute] | list[LodAnswer]", None]


def slice_us(ctx: ApiContext) -> int:
    return int(ctx.settings.api.history_slice_s * 1_000_000)


def projection(head: dict[str, Any], root: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """The document header plus the selected channels under ``root`` (every one without fields)."""
    out = dict(head)
    for name in fields or ("",):
        out[f"{root}.{name}" if name else root] = 1
    return out


def session_filter(query: TelemetryQuery, lo_us: int, hi_us: int) -> dict[str, Any]:
    """Documents of the session starting in ``[lo, hi)`` (the compound index's range)."""
    span = {"$gte": micros_to_datetime(lo_us), "$lt": micros_to_datetime(hi_us)}
    return {"robot_id": query.robot_id, "session_id": query.session_id, "timestamp": span}


def groups_of(fields: tuple[str, ...]) -> list[str | None]:
    """The channel groups to read one by one (equality on ``group``: its index), or [None]: all."""
    groups: list[str | None] = [None]
    if fields:
        groups = list(sorted({f.split(".", 1)[0] for f in fields}))
    return groups


async def find_all(collection: Any, where: dict[str, Any], fields: dict[str, Any],
                   groups: list[str | None]) -> list[dict[str, Any]]:
    """Documents of ``where`` for each group, in time order (sorted here: a server-side sort
    costs SecantusDB a decode of every candidate document)."""
    docs: list[dict[str, Any]] = []
    for group in groups:
        docs += await collection.find(where if group is None else {**where, "group": group},
                                      fields).to_list(None)
    docs.sort(key=lambda d: (d.get("timestamp_us", d.get("span_start_us", 0)), d["group"]))
    return docs


async def sliced(first_us: int, end_us: int, base: int, read: Callable[[int, int], Any]) -> Any:
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


def cut(minute: Minute, start_us: int, end_us: int) -> Minute:
    """The minute's samples within ``[start_us, end_us)`` (views, no copy)."""
    lo, hi = np.searchsorted(minute.times, [start_us, end_us])
    if lo == 0 and hi == len(minute):
        return minute
    return Minute(minute.robot_id, minute.session_id, minute.group, minute.minute_us,
                  minute.times[lo:hi], minute.seqs[lo:hi], minute.indexes[lo:hi], minute.names,
                  minute.values[:, lo:hi])


async def raw_items(ctx: ApiContext, query: TelemetryQuery) -> Items:
    """Every stored sample in the range: one list of :class:`Minute` (its channel groups) per minute."""
    collection = ctx.stores.db.telemetry
    fields = projection({**_MINUTE_HEAD, "t": 1, "seq": 1, "i": 1}, "values", query.fields)

    groups = groups_of(query.fields)

    async def read(lo: int, hi: int) -> list[dict[str, Any]]:
        return await find_all(collection, session_filter(query, lo, hi), fields, groups)

    first = query.start_us - query.start_us % MINUTE_US
    async for docs in sliced(first, query.end_us, slice_us(ctx), read):
        by_minute: dict[int, list[Minute]] = {}
        for doc in docs:
            minute = cut(Minute.from_document(doc), query.start_us, query.end_us)
            if len(minute) and minute.names:
                by_minute.setdefault(minute.minute_us, []).append(minute)
        for minute_us in sorted(by_minute):
            yield sorted(by_minute[minute_us], key=lambda m: m.group)


# -- the pyramid -----------------------------------------------------------------------------------


@dataclass
class LodAnswer:
    """Buckets of whole pyramid bins, per channel group: ``stats`` is ``(channels, 4, buckets)``."""

    level: str
    bucket_us: int
    starts: np.ndarray
    groups: list[tuple[str, list[str], np.ndarray]]


def choose_level(span_us: int, max_points: int) -> str | None:
    """The coarsest level with at least ``max_points`` bins over the span, or None."""
    for level in reversed(LEVELS):
        if math.ceil(span_us / LEVELS[level]) >= max_points:
            return level
    return None


def lod_bucket_us(query: TelemetryQuery, level: str) -> int:
    """Buckets of whole bins (aligned to their length), at most ``max_points`` over the range."""
    assert query.max_points is not None
    bin_us = LEVELS[level]
    wanted = math.ceil((query.end_us - query.start_us) / query.max_points)
    bucket = max(1, math.ceil(wanted / bin_us)) * bin_us
    while math.ceil((query.end_us - (query.start_us - query.start_us % bucket)) / bucket) > query.max_points:
        bucket += bin_us  # the aligned first bucket starts before the range: one more may not fit
    return bucket


async def lod_spans(ctx: ApiContext, query: TelemetryQuery, level: str, origin: int) -> list[LodSpan]:
    """The stored bins of ``level`` over ``[origin, end)``."""
    db = ctx.stores.db
    lo = origin - origin % LOD_SPAN_US[level]  # the span holding ``origin`` starts before it
    where = {**session_filter(query, lo, query.end_us), "level": level}
    docs = await find_all(db.telemetry_lod, where, projection(_LOD_HEAD, "stats", query.fields),
                          groups_of(query.fields))
    return [LodSpan.from_document(doc) for doc in docs]


def lod_answer(query: TelemetryQuery, level: str, spans: list[LodSpan]) -> LodAnswer:
    """Merge the spans' bins into buckets of :func:`lod_bucket_us` from an aligned origin."""
    bucket_us = lod_bucket_us(query, level)
    bin_us = LEVELS[level]
    origin = query.start_us - query.start_us % bucket_us
    total = math.ceil((query.end_us - origin) / bin_us)
    per = bucket_us // bin_us
    total = math.ceil(total / per) * per
    grids: dict[str, tuple[list[str], np.ndarray]] = {}
    for span in spans:
        names, grid = grids.setdefault(span.group, ([], empty_stats(0, total)))
        new = [n for n in span.names if n not in names]
        if new:
            names += new
            grid = np.concatenate([grid, empty_stats(len(new), total)])
            grids[span.group] = (names, grid)
        at = (span.span_start_us - origin) // bin_us
        lo, hi = max(0, -at), min(span.stats.shape[2], total - at)
        if lo < hi:
            rows = [names.index(n) for n in span.names]
            grid[rows, :, at + lo:at + hi] = span.stats[:, :, lo:hi]
    starts = origin + np.arange(total // per, dtype=np.int64) * bucket_us
    groups = [(group, names, combine(grid, per)) for group, (names, grid) in sorted(grids.items())]
    return LodAnswer(level, bucket_us, starts, groups)


def samples_in(spans: list[LodSpan], query: TelemetryQuery) -> int:
    """About how many samples (rows) 1 s bins hold over the range: a sample has a document per
    channel group, so the fullest group's first channel counts."""
    totals: dict[str, float] = {}
    for span in spans:
        if not span.names:
            continue
        starts = span.span_start_us + np.arange(span.bins, dtype=np.int64) * span.bin_us
        inside = (starts >= query.start_us - span.bin_us) & (starts < query.end_us)
        totals[span.group] = totals.get(span.group, 0.0) + float(span.stats[0, COUNT, inside].sum())
    return int(max(totals.values(), default=0.0))


async def plan_items(ctx: ApiContext, query: TelemetryQuery) -> tuple[Plan, Items]:
    """Every point, or buckets of the pyramid (see the module docstring)."""
    if query.max_points is None:
        return Plan("raw"), raw_items(ctx, query)
    level = choose_level(query.end_us - query.start_us, query.max_points) or "1s"
    bins = math.ceil((query.end_us - query.start_us) / LEVELS[level])
    if bins > MAX_LOD_BINS:  # the answer is assembled in memory: (channels, 4, bins) floats
        raise ApiError(400, "invalid_parameter",
                       f"max_points={query.max_points} over this range needs {bins:,} pyramid bins of "
                       f"{level} (at most {MAX_LOD_BINS:,}): ask fewer points, a shorter range, "
                       "or every point (no max_points)")
    bucket_us = lod_bucket_us(query, level)
    spans = await lod_spans(ctx, query, level, query.start_us - query.start_us % bucket_us)
    if LEVELS[level] * query.max_points > query.end_us - query.start_us \
            and samples_in(spans, query) <= RAW_FACTOR * query.max_points:
        return Plan("raw"), raw_items(ctx, query)  # even 1 s bins are too coarse: zoomed in
    return Plan("lod", bucket_us, level), _one(lod_answer(query, level, spans))


async def _one(answer: LodAnswer) -> Items:
    yield [answer]


# -- encoding ---------------------------------------------------------------------------------------


def minute_rows(minutes: list[Minute]) -> Block:
    """Rows of one minute's channel groups in time order: one per sample, with the values of every
    group (the groups' documents share the samples' ``(seq, i)``); samples without values left out."""
    if len(minutes) == 1:
        return _group_rows(minutes[0])
    merged: dict[tuple[int, int, int], dict[str, Any]] = {}
    for minute in minutes:
        for row in _group_rows(minute):
            key = (row["ts_us"], row["seq"], row["i"])
            held = merged.get(key)
            if held is None:
                merged[key] = row
            else:
                held["values"].update(row["values"])
    return [merged[key] for key in sorted(merged)]


def _group_rows(minute: Minute) -> Block:
    names = minute.names
    rows = []
    for seq, index, ts, row in zip(minute.seqs.tolist(), minute.indexes.tolist(), minute.times.tolist(),
                                   minute.values.T.tolist(), strict=True):
        values = {n: v for n, v in zip(names, row, strict=True) if v == v}
        if values:
            rows.append({"seq": seq, "i": index, "ts_us": ts, "values": values})
    return rows


def lod_rows(answer: LodAnswer) -> Block:
    """One row per non-empty bucket, every group's channels merged."""
    rows: list[dict[str, Any]] = [
        {"ts_us": int(start), "end_us": int(start) + answer.bucket_us, "values": {}, "min": {},
         "max": {}, "count": {}} for start in answer.starts.tolist()]
    for _group, names, stats in answer.groups:
        counts, lows, highs, means = (stats[:, k, :].tolist() for k in (COUNT, MIN, MAX, MEAN))
        for c, name in enumerate(names):
            for j, n in enumerate(counts[c]):
                if n > 0:
                    row = rows[j]
                    row["values"][name] = means[c][j]
                    row["min"][name] = lows[c][j]
                    row["max"][name] = highs[c][j]
                    row["count"][name] = int(n)
    return [r for r in rows if r["values"]]


def minute_columns(minute: Minute) -> dict[str, Any]:
    return {"kind": "raw", "group": minute.group, "n": len(minute),
            "ts_us": minute.times.astype(I8).tobytes(), "seq": minute.seqs.astype(I8).tobytes(),
            "i": minute.indexes.astype(I4).tobytes(),
            "values": {n: minute.values[c].astype(F8).tobytes() for c, n in enumerate(minute.names)}}


def lod_columns(answer: LodAnswer) -> list[dict[str, Any]]:
    out = []
    for group, names, stats in answer.groups:
        keep = (stats[:, COUNT, :] > 0).any(axis=0)
        part = stats[:, :, keep]
        out.append({"kind": "lod", "group": group, "level": answer.level, "bucket_us": answer.bucket_us,
                    "n": int(keep.sum()), "ts_us": answer.starts[keep].astype(I8).tobytes(),
                    **{stat: {n: part[c, k].astype(F8).tobytes() for c, n in enumerate(names)}
                       for stat, k in (("count", COUNT), ("min", MIN), ("max", MAX), ("mean", MEAN))}})
    return out


def encoder(media: str) -> Callable[[list[Minute] | list[LodAnswer]], tuple[bytes, int]]:
    """Bytes and item count of one batch: rows (NDJSON, MessagePack) or column maps."""
    if media == COLUMNS:
        pack = msgpack.Packer(use_bin_type=True).pack

        def columns(batch: list[Minute] | list[LodAnswer]) -> tuple[bytes, int]:
            maps = [m for item in batch for m in (
                lod_columns(item) if isinstance(item, LodAnswer) else [minute_columns(item)])]
            return b"".join(pack(m) for m in maps), sum(m["n"] for m in maps)
        return columns

    dump = msgpack.Packer(use_bin_type=True).pack if media == MSGPACK else (
        lambda row: orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))

    def rows(batch: list[Minute] | list[LodAnswer]) -> tuple[bytes, int]:
        out: Block = []
        minutes = [i for i in batch if isinstance(i, Minute)]
        if minutes:
            out += minute_rows(minutes)
        for item in batch:
            if isinstance(item, LodAnswer):
                out += lod_rows(item)
        return b"".join(dump(r) for r in out), len(out)
    return rows


def error_bytes(media: str, error: dict[str, Any]) -> bytes:
    if media == NDJSON:
        return orjson.dumps(error, option=orjson.OPT_APPEND_NEWLINE)
    return msgpack.packb(error, use_bin_type=True)


# -- the route -------------------------------------------------------------------------------------


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


async def parse_query(ctx: ApiContext, params: TelemetryParams) -> TelemetryQuery:
    lo, hi = await resolve_range(ctx, params.robot, params.session, params.from_, params.to)
    return TelemetryQuery(params.robot, params.session, lo, hi, params.fields, params.max_points)


async def get_telemetry(request: web.Request) -> web.StreamResponse:
    """``GET /v1/telemetry?robot=&session=&from=&to=&fields=&max_points=&format=``."""
    ctx = context_of(request)
    media = negotiate(request.headers.get("Accept"), request.query.get("format"))  # 406 comes first
    params = TelemetryParams.parse(request.query, ctx.settings.api)
    query = await parse_query(ctx, params)
    plan, items = await plan_items(ctx, query)
    headers = {"X-Robostream-Source": plan.source, "Cache-Control": "no-store",
               **request.get(CORS_HEADERS, {})}
    if plan.level:
        headers["X-Robostream-Level"] = plan.level
    if plan.bucket_us:
        headers["X-Robostream-Bucket-Us"] = str(plan.bucket_us)
    response = web.StreamResponse(headers=headers)
    response.content_type = media
    response.enable_chunked_encoding()
    await response.prepare(request)
    await stream_items(ctx, response, items, media)
    return response


async def stream_items(ctx: ApiContext, response: web.StreamResponse, items: Items, media: str) -> None:
    """Write answers as they come (chunks of ~64 KiB); a store failure ends with an error item."""
    encode = encoder(media)
    stats = ctx.history
    stats.open_streams += 1
    stats.streams += 1
    stats.first_write_at = stats.reads_done_at = None
    buffer: list[bytes] = []
    size = 0
    try:
        async for batch in items:
            chunk, count = encode(batch)
            stats.rows_sent += count
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
        await response.write(b"".join(buffer) + error_bytes(media, error))
        await response.write_eof()
    finally:
        stats.open_streams -= 1
        await items.aclose()  # stops the slice being prefetched
