"""Historical playback: a time range of telemetry, streamed from MongoDB in time order.

The data is one hour of a simulated robot, landed by the real MongoDB and Redis sinks: pose and
joints at 1 Hz in records of 10 samples (one record per 10 s, a record often crossing a minute
and then stored as two documents), and force/torque at 0.5 Hz in records of 3 samples, whose
documents overlap the others in time.
"""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import msgpack
import numpy as np
import orjson
import pytest

from robostream.processors.columns import TelemetryColumns
from robostream.sinks.points import Telemetry, points
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, now_us

HOUR_US = 3_600_000_000


def expected_points(records: list[TelemetryColumns]) -> list[dict[str, Any]]:
    """What the sinks make of the records, point by point, in time order."""
    out = [p for c in records for b in Telemetry.from_columns(c).buckets for p in points(b)]
    return sorted(out, key=lambda p: (p["ts_us"], p["seq"], p["i"]))


@pytest.fixture(scope="module")
def hour(landing: Landing, tag: str) -> dict[str, Any]:
    """One hour of telemetry of robot ``rb-<tag>`` session ``hour``, with 1m/1h aggregations."""
    robot, session = f"rb-{tag}", "hour"
    start = (now_us() // HOUR_US - 2) * HOUR_US + 7_000_000  # two hours ago, off the minute
    landing.session_start(robot, session, start)
    arm = SimulatedRobot(robot, session, start, rate_hz=1.0, samples=10, streams=("pose", "joints"))
    wrist = SimulatedRobot(robot, session, start + 300_000, rate_hz=0.5, samples=3,
                           streams=("force_torque",), first_seq=1_000_000)
    records = arm.records(360) + wrist.records(600)
    landing.telemetry(records)
    landing.stats(records)
    landing.session_end(robot, session, start + HOUR_US)
    return {"robot": robot, "session": session, "start": start, "records": records,
            "points": expected_points(records)}


def telemetry_url(api: RunningApi, data: dict[str, Any], **params: Any) -> str:
    query = {"robot": data["robot"], "session": data["session"], "from": data["start"] / 1e6,
             "to": (data["start"] + HOUR_US) / 1e6, **params}
    return f"{api.url}/v1/telemetry?" + "&".join(f"{k}={v}" for k, v in query.items())


async def test_a_one_hour_range_streams_every_point_in_order(api: RunningApi, hour: dict[str, Any]) -> None:
    history = api.context.history
    rows: list[dict[str, Any]] = []
    server_at_first_line = None
    async with aiohttp.ClientSession() as http, http.get(telemetry_url(api, hour)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in response.headers
        assert response.headers["X-Robostream-Source"] == "raw"
        async for line in response.content:
            if not rows:  # where the server was when the first point reached the client
                server_at_first_line = history.reads_done_at
            rows.append(orjson.loads(line))

    assert len(rows) == len(hour["points"]) == 3600 + 1800
    assert rows == hour["points"]  # every stored point, values and all, in time order
    assert all(a["ts_us"] <= b["ts_us"] for a, b in itertools.pairwise(rows))
    # streamed: the first bytes left the server before its last read finished, and the client had
    # its first point while the server was still reading the rest (it had not produced the body)
    assert history.first_write_at is not None and history.reads_done_at is not None
    assert history.first_write_at < history.reads_done_at
    assert server_at_first_line is None


async def test_messagepack_by_accept_holds_the_same_rows(api: RunningApi, hour: dict[str, Any]) -> None:
    url = telemetry_url(api, hour, fields="pose.position")
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"Accept": "application/msgpack"}) as response:
            assert response.headers["Content-Type"].startswith("application/msgpack")
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(await response.read())
            packed = list(unpacker)
        async with http.get(url) as response:
            lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
    assert packed == lines and len(packed) == 3600
    assert set(packed[0]["values"]) == {"pose.position.x", "pose.position.y", "pose.position.z"}


def columns(body: bytes) -> list[dict[str, Any]]:
    """The ``columns`` format: MessagePack maps with packed little-endian columns."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(body)
    return list(unpacker)


async def get(api: RunningApi, url: str) -> tuple[bytes, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.read(), response.headers


def inside(points: list[dict[str, Any]], metric: str, row: dict[str, Any]) -> list[float]:
    return [p["values"][metric] for p in points
            if metric in p["values"] and row["ts_us"] <= p["ts_us"] < row["end_us"]]


async def test_max_points_answers_min_max_buckets_from_the_pyramid(api: RunningApi,
                                                                   hour: dict[str, Any]) -> None:
    body, headers = await get(api, telemetry_url(api, hour, max_points=30, fields="pose.position.x"))
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert headers["X-Robostream-Source"] == "lod"
    assert headers["X-Robostream-Level"] == "1m" and headers["X-Robostream-Bucket-Us"] == "180000000"
    assert 20 <= len(rows) <= 30  # 3-minute buckets: 2-minute ones, aligned, would be 31
    for row in rows:  # each bucket: the mean, min and max of the raw points it covers
        raw = inside(hour["points"], "pose.position.x", row)
        assert row["count"]["pose.position.x"] == len(raw)
        assert row["values"]["pose.position.x"] == pytest.approx(sum(raw) / len(raw), rel=1e-9)
        assert (row["min"]["pose.position.x"], row["max"]["pose.position.x"]) == (min(raw), max(raw))


async def test_finer_max_points_use_the_one_second_level(api: RunningApi, hour: dict[str, Any]) -> None:
    body, headers = await get(api, telemetry_url(api, hour, max_points=400, fields="joints"))
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert (headers["X-Robostream-Level"], headers["X-Robostream-Bucket-Us"]) == ("1s", "10000000")
    assert 300 <= len(rows) <= 400  # 10 s buckets (9 s ones, aligned, would be 401)
    assert all(set(r["values"]) <= {f"joints.{f}.{j}" for f in ("angle", "velocity", "torque")
                                    for j in range(7)} for r in rows)
    for row in rows:
        raw = inside(hour["points"], "joints.angle.3", row)
        assert (row["min"]["joints.angle.3"], row["max"]["joints.angle.3"]) == (min(raw), max(raw))


async def test_a_short_range_answers_raw_points_even_with_max_points(api: RunningApi,
                                                                     hour: dict[str, Any]) -> None:
    start = hour["start"] + 600_000_000
    url = telemetry_url(api, hour, max_points=100, **{"from": start / 1e6, "to": (start + 60_000_000) / 1e6})
    body, headers = await get(api, url)
    assert headers["X-Robostream-Source"] == "raw"  # 60 bins < 100, and 90 points <= 10 x 100
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert rows == [p for p in hour["points"] if start <= p["ts_us"] < start + 60_000_000]


async def test_the_columns_format_holds_the_same_samples(api: RunningApi, hour: dict[str, Any]) -> None:
    body, headers = await get(api, telemetry_url(api, hour, format="columns"))
    assert headers["Content-Type"].startswith("application/vnd.robostream.columns+msgpack")
    samples: dict[tuple[int, int, int], dict[str, Any]] = {}  # a block per minute and channel group
    for block in columns(body):
        assert block["kind"] == "raw"
        ts = np.frombuffer(block["ts_us"], "<i8")
        seq, index = np.frombuffer(block["seq"], "<i8"), np.frombuffer(block["i"], "<i4")
        values = {name: np.frombuffer(column, "<f8") for name, column in block["values"].items()}
        for k in range(block["n"]):
            key = (int(ts[k]), int(seq[k]), int(index[k]))
            sample = samples.setdefault(key, {"seq": key[1], "i": key[2], "ts_us": key[0], "values": {}})
            sample["values"].update({n: float(v[k]) for n, v in values.items() if v[k] == v[k]})
    assert [samples[key] for key in sorted(samples)] == hour["points"]

    body, headers = await get(api, telemetry_url(api, hour, format="columns", max_points=30, fields="pose"))
    lod = columns(body)
    assert {b["group"] for b in lod} == {"pose"} and lod[0]["level"] == "1m"
    rows = [orjson.loads(line) for line in (await get(api, telemetry_url(
        api, hour, max_points=30, fields="pose")))[0].splitlines()]
    block = lod[0]
    assert list(np.frombuffer(block["ts_us"], "<i8")) == [r["ts_us"] for r in rows]
    assert list(np.frombuffer(block["max"]["pose.position.x"], "<f8")) == [
        r["max"]["pose.position.x"] for r in rows]


async def test_bad_requests_answer_json_errors(api: RunningApi, hour: dict[str, Any]) -> None:
    cases = [
        (f"/v1/telemetry?robot=..%2Fetc&session={hour['session']}", {}, 400, "invalid_id"),
        (f"/v1/telemetry?robot={hour['robot']}&session=nope", {}, 404, "not_found"),
        (f"/v1/telemetry?robot={hour['robot']}&session={hour['session']}&from=yesterday", {}, 400,
         "invalid_time"),
        (f"/v1/telemetry?robot={hour['robot']}&session={hour['session']}&max_points=0", {}, 400,
         "invalid_parameter"),
        (f"/v1/telemetry?robot={hour['robot']}&session={hour['session']}&fields=pose..x", {}, 400,
         "invalid_metric"),
        (f"/v1/telemetry?robot={hour['robot']}&session={hour['session']}", {"Accept": "text/html"}, 406,
         "not_acceptable"),
        ("/v1/telemetry?session=x", {}, 400, "missing_parameter"),
    ]
    async with aiohttp.ClientSession() as http:
        for path, headers, status, code in cases:
            async with http.get(api.url + path, headers=headers) as response:
                body = await response.json()
                assert (response.status, body["code"]) == (status, code), path
                assert body["message"]
