"""History answers from minute buckets and the pyramid: exact samples, time order, min/max buckets.

The property tests build stored documents exactly as the MongoDB sink does (random records with
gaps, several streams, minutes and hours crossed), read them back as the API does, and compare
with a direct scan of the raw records -- in every response format.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robostream.api.errors import ApiError
from robostream.api.history import (
    COLUMNS,
    MSGPACK,
    NDJSON,
    LodAnswer,
    Minute,
    TelemetryQuery,
    choose_level,
    cut,
    encoder,
    lod_answer,
    lod_bucket_us,
    negotiate,
    plan_items,
)
from robostream.processors.bucketing import bucket_records
from robostream.processors.columns import TelemetryColumns
from robostream.sinks.bucket_store import bucket_documents, pieces_of
from robostream.sinks.buckets import LEVELS, LodSpan

HOUR = 3_600_000_000
BASE = 1_795_600_000_000_000 - 1_795_600_000_000_000 % HOUR + HOUR - 90_000_000  # 90 s before an hour


def query(**changes: object) -> TelemetryQuery:
    base = {"robot_id": "r1", "session_id": "s1", "start_us": 0, "end_us": 1 << 62,
            "fields": (), "max_points": None}
    return TelemetryQuery(**{**base, **changes})  # type: ignore[arg-type]


def record(seq: int, start: int, step: int, n: int, names: tuple[str, ...], rng: np.random.Generator,
           ) -> TelemetryColumns:
    times = start + np.arange(n, dtype=np.int64) * step
    return TelemetryColumns("r1", "s1", seq, start, times, names, rng.normal(size=(len(names), n)))


@st.composite
def sessions(draw: Any) -> list[TelemetryColumns]:
    """Two streams at different rates, records with random sizes and gaps (minutes, an hour)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    records, seq = [], 0
    streams = ((("pose.position.x", "pose.position.y"), 10_000), (("force_torque.force.z",), 33_333))
    for names, step in streams:
        at = BASE + draw(st.integers(0, 5_000_000))
        for _ in range(draw(st.integers(1, 12))):
            n = draw(st.integers(1, 40))
            records.append(record(seq, at, step, n, names, rng))
            seq += 1
            at += n * step + draw(st.sampled_from([0, 0, 1_000_000, 45_000_000]))  # gaps
    return records


def raw_scan(records: list[TelemetryColumns], lo: int, hi: int) -> list[dict[str, Any]]:
    """The reference: every sample of the raw records within ``[lo, hi)``, in time order."""
    out = []
    for r in records:
        for k, ts in enumerate(r.times.tolist()):
            if lo <= ts < hi:
                out.append({"seq": r.seq, "i": k, "ts_us": ts,
                            "values": {n: float(r.values[j, k]) for j, n in enumerate(r.names)}})
    return sorted(out, key=lambda p: (p["ts_us"], p["seq"], p["i"]))


def stored(records: list[TelemetryColumns]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    buckets = [b for r in records for b in bucket_records([r])]
    return bucket_documents(pieces_of(buckets))


def read_minutes(docs: list[dict[str, Any]], lo: int, hi: int) -> list[list[Minute]]:
    """What the API's raw reader yields: per minute, its groups' samples within the range."""
    by_minute: dict[int, list[Minute]] = {}
    for doc in sorted(docs, key=lambda d: (d["timestamp_us"], d["group"])):
        minute = cut(Minute.from_document(doc), lo, hi)
        if len(minute):
            by_minute.setdefault(minute.minute_us, []).append(minute)
    return [by_minute[m] for m in sorted(by_minute)]


def decode(media: str, body: bytes) -> list[dict[str, Any]]:
    if media == NDJSON:
        return [orjson.loads(line) for line in body.splitlines()]
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(body)
    items = list(unpacker)
    if media == MSGPACK:
        return items
    samples: dict[tuple[int, int, int], dict[str, Any]] = {}  # a sample's groups come in blocks
    for block in items:
        ts, seq = np.frombuffer(block["ts_us"], "<i8"), np.frombuffer(block["seq"], "<i8")
        index = np.frombuffer(block["i"], "<i4")
        values = {n: np.frombuffer(v, "<f8") for n, v in block["values"].items()}
        for k in range(block["n"]):
            key = (int(ts[k]), int(seq[k]), int(index[k]))
            sample = samples.setdefault(key, {"seq": key[1], "i": key[2], "ts_us": key[0], "values": {}})
            sample["values"].update({n: float(v[k]) for n, v in values.items() if v[k] == v[k]})
    return list(samples.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=sessions(), cut_at=st.tuples(st.integers(-2_000_000, 200_000_000),
                                            st.integers(0, 200_000_000)))
def test_bucketed_reads_return_exactly_the_raw_samples_in_every_format(
        records: list[TelemetryColumns], cut_at: tuple[int, int]) -> None:
    lo = BASE + cut_at[0]
    hi = lo + cut_at[1]
    expected = raw_scan(records, lo, hi)
    minutes, _ = stored(records)
    batches = read_minutes(minutes, lo, hi)
    for media in (NDJSON, MSGPACK, COLUMNS):
        encode = encoder(media)
        got = [row for batch in batches for row in decode(media, encode(batch)[0])]
        if media == COLUMNS:  # blocks per channel group: time order within each, joined here
            got.sort(key=lambda p: (p["ts_us"], p["seq"], p["i"]))
        assert got == expected, media


def test_a_replayed_record_changes_no_document() -> None:
    rng = np.random.default_rng(1)
    records = [record(s, BASE + s * 100_000, 10_000, 10, ("pose.position.x",), rng) for s in range(30)]
    once, _ = stored(records)
    twice, _ = stored(records + records[3:9])
    assert [d["n"] for d in once] == [d["n"] for d in twice]
    assert [bytes(d["values"]["pose"]["position"]["x"]) for d in once] == [
        bytes(d["values"]["pose"]["position"]["x"]) for d in twice]


# -- the pyramid ------------------------------------------------------------------------------------


def lod_from(spans: list[dict[str, Any]], minutes: list[dict[str, Any]], level: str,
             q: TelemetryQuery) -> LodAnswer:
    parsed = [LodSpan.from_document(d) for d in spans if d["level"] == level]
    return lod_answer(q, level, parsed)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=sessions(), level=st.sampled_from(list(LEVELS)), points=st.integers(1, 50),
       spike_at=st.integers(0, 10_000))
def test_pyramid_min_max_match_an_independent_computation_and_keep_a_spike(
        records: list[TelemetryColumns], level: str, points: int, spike_at: int) -> None:
    target = records[spike_at % len(records)]
    target.values[0, spike_at % target.values.shape[1]] = 1e6  # one sample, far above the rest
    spike_ts = int(target.times[spike_at % target.values.shape[1]])
    minutes, spans = stored(records)
    lo, hi = BASE - HOUR, BASE + 3 * HOUR
    q = query(start_us=lo, end_us=hi, max_points=points)
    answer = lod_from(spans, minutes, level, q)
    assert answer.bucket_us % LEVELS[level] == 0
    raw = raw_scan(records, lo, hi)
    for group, names, stats in answer.groups:
        for c, name in enumerate(names):
            for j, start in enumerate(answer.starts.tolist()):
                inside = [p["values"][name] for p in raw
                          if name in p["values"] and start <= p["ts_us"] < start + answer.bucket_us]
                assert stats[c, 0, j] == len(inside), (group, name, j)
                if inside:
                    assert (stats[c, 1, j], stats[c, 2, j]) == (min(inside), max(inside))
                    assert stats[c, 3, j] == pytest.approx(sum(inside) / len(inside), rel=1e-9, abs=1e-9)
    name = target.names[0]
    spiked = next((stats[names.index(name), 2], answer.starts) for _, names, stats in answer.groups
                  if name in names)
    j = int(np.searchsorted(spiked[1], spike_ts, side="right")) - 1
    assert spiked[0][j] == 1e6  # the spike is the max of its bucket at every level


def test_levels_and_buckets_for_a_range() -> None:
    hour = 3_600_000_000
    assert choose_level(hour, 1000) == "1s" and choose_level(hour, 300) == "10s"
    assert choose_level(24 * hour, 4000) == "10s" and choose_level(24 * hour, 1000) == "1m"
    assert choose_level(7 * 24 * hour, 100) == "1h" and choose_level(60_000_000, 100) is None
    q = query(start_us=7_000_000, end_us=7_000_000 + hour, max_points=30)
    bucket = lod_bucket_us(q, "1m")
    assert bucket % 60_000_000 == 0
    assert math.ceil((q.end_us - (q.start_us - q.start_us % bucket)) / bucket) <= 30


@pytest.mark.parametrize(("accept", "fmt", "media"), [
    (None, None, NDJSON), ("*/*", None, NDJSON), ("application/x-ndjson", None, NDJSON),
    ("application/msgpack", None, MSGPACK), ("application/x-msgpack;q=0.9, */*;q=0.1", None, MSGPACK),
    ("text/html, application/json;q=0.5", "msgpack", MSGPACK), (None, "columns", COLUMNS),
    ("application/vnd.robostream.columns+msgpack", None, COLUMNS),
])
def test_negotiation(accept: str | None, fmt: str | None, media: str) -> None:
    assert negotiate(accept, fmt) == media


def test_unacceptable_answers_406() -> None:
    with pytest.raises(ApiError) as caught:
        negotiate("text/html, application/json", None)
    assert caught.value.status == 406


async def test_max_points_beyond_what_fits_in_memory_is_a_clear_400() -> None:
    ten_days = query(start_us=0, end_us=10 * 24 * HOUR, max_points=900_000)  # 1 s level: 864,000 bins
    with pytest.raises(ApiError) as caught:
        await plan_items(None, ten_days)  # type: ignore[arg-type]  # refused before any read
    assert caught.value.status == 400 and "ask fewer points" in str(caught.value)
