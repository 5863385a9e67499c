"""Aggregations (Redis first, MongoDB fallback) and the robot/session catalogue."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from robostream.api.params import micros_to_iso
from robostream.processors import WindowStats
from robostream.topics import StatsResolution
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, now_us

MINUTE_US = 60_000_000


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


def windows_of(stats: list[WindowStats], metric: str, resolution: str) -> list[dict[str, Any]]:
    out = []
    for window in stats:
        for agg in window.aggregates():
            if agg.metric == metric and agg.resolution == resolution:
                out.append({"window_start_us": agg.window_start, "count": agg.count, "mean": agg.mean,
                            "min": agg.min, "max": agg.max, "last": agg.last})
    return sorted(out, key=lambda w: w["window_start_us"])


def summary(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: w[k] for k in ("window_start_us", "count", "mean", "min", "max", "last")} for w in windows]


async def test_stats_come_from_redis_while_it_holds_them(api: RunningApi, landing: Landing,
                                                         ids: dict[str, str]) -> None:
    start = (now_us() // MINUTE_US - 20) * MINUTE_US
    records = SimulatedRobot(ids["robot"], ids["session"], start, rate_hz=1.0).records(60)  # 10 min
    stats = landing.stats(records, resolutions=(StatsResolution.MINUTE,))
    stats += landing.stats(records[:6], resolutions=(StatsResolution.SECOND,), to=("redis",))  # as configured
    base = f"{api.url}/v1/stats/pose.position.x?robot={ids['robot']}&session={ids['session']}"
    async with aiohttp.ClientSession() as http:
        _, minute = await get(http, base + "&resolution=1m")
        _, second = await get(http, base + f"&resolution=1s&from={(start + 30_000_000) / 1e6}&limit=5")
    assert minute["source"] == "redis" and minute["metric"] == "pose.position.x"
    assert summary(minute["windows"]) == windows_of(stats, "pose.position.x", "1m")
    assert second["source"] == "redis"  # 1 s windows live only in Redis
    assert summary(second["windows"]) == [w for w in windows_of(stats, "pose.position.x", "1s")
                                          if w["window_start_us"] >= start + 30_000_000][:5]


async def test_older_windows_than_redis_holds_come_from_mongodb(api: RunningApi, landing: Landing,
                                                                ids: dict[str, str]) -> None:
    start = (now_us() // MINUTE_US - 40) * MINUTE_US
    robot = SimulatedRobot(ids["robot"], ids["session"], start, rate_hz=1.0)
    early, late = robot.records(60), robot.records(60)  # two 10-minute halves
    stored_early = landing.stats(early, resolutions=(StatsResolution.MINUTE,), to=("mongo",))
    stored_late = landing.stats(late, resolutions=(StatsResolution.MINUTE,))  # Mongo and Redis
    base = f"{api.url}/v1/stats/joints.angle.3?robot={ids['robot']}&session={ids['session']}&resolution=1m"
    async with aiohttp.ClientSession() as http:
        _, recent = await get(http, base + f"&from={(start + 10 * MINUTE_US) / 1e6}")
        _, whole = await get(http, base + f"&from={start / 1e6}")
    assert recent["source"] == "redis"
    assert summary(recent["windows"]) == windows_of(stored_late, "joints.angle.3", "1m")
    assert whole["source"] == "mongo"
    assert summary(whole["windows"]) == windows_of(stored_early + stored_late, "joints.angle.3", "1m")


async def test_stats_errors(api: RunningApi, ids: dict[str, str]) -> None:
    query = f"robot={ids['robot']}&session={ids['session']}"
    async with aiohttp.ClientSession() as http:
        for path, code in ((f"/v1/stats/1bad?{query}", "invalid_metric"),
                           (f"/v1/stats/pose.position.x?{query}&resolution=5m", "invalid_parameter"),
                           ("/v1/stats/pose.position.x?robot=a/b&session=s", "invalid_id")):
            status, body = await get(http, api.url + path)
            assert (status, body["code"]) == (400, code), path


@pytest.fixture(scope="module")
def fleet(landing: Landing, tag: str) -> dict[str, Any]:
    """Two robots: one with two sessions (an ended one and a running one), one with one."""
    now = now_us()
    a, b = f"arm-{tag}", f"cart-{tag}"
    landing.session_start(a, "old", now - 3 * 3_600_000_000, cameras=("front", "wrist"))
    landing.telemetry(SimulatedRobot(a, "old", now - 3 * 3_600_000_000).records(3))
    landing.session_end(a, "old", now - 2 * 3_600_000_000)
    landing.session_start(a, "new", now - 60_000_000)
    landing.telemetry(SimulatedRobot(a, "new", now - 60_000_000).records(3))
    landing.image(a, "new", now - 30_000_000, seq=1, camera="wrist")
    landing.session_start(b, "new", now - 120_000_000)
    return {"a": a, "b": b, "now": now}


async def test_robots_and_their_sessions(api: RunningApi, fleet: dict[str, Any]) -> None:
    a, now = fleet["a"], fleet["now"]
    async with aiohttp.ClientSession() as http:
        _, robots = await get(http, f"{api.url}/v1/robots")
        _, sessions = await get(http, f"{api.url}/v1/sessions?robot={a}")
        _, recent = await get(http, f"{api.url}/v1/sessions?robot={a}&from={(now - 600_000_000) / 1e6}")
        _, detail = await get(http, f"{api.url}/v1/sessions/{a}:new")
        ambiguous_status, ambiguous = await get(http, f"{api.url}/v1/sessions/new")
        by_query_status, by_query = await get(http, f"{api.url}/v1/sessions/new?robot={fleet['b']}")
        missing_status, missing = await get(http, f"{api.url}/v1/sessions/{a}:nope")
    listed = {r["robot_id"]: r for r in robots["robots"]}
    assert listed[a]["sessions"] == 2 and listed[fleet["b"]]["sessions"] == 1
    assert listed["robot_001"]["configured"] is True  # from config.yaml even without sessions
    assert [s["session_id"] for s in sessions["sessions"]] == ["new", "old"]  # newest first
    assert [s["status"] for s in sessions["sessions"]] == ["running", "ended"]
    assert [s["session_id"] for s in recent["sessions"]] == ["new"]  # "old" ended two hours ago
    assert detail["id"] == f"{a}:new" and detail["stats"]["total_telemetry_points"] == 30
    assert detail["cameras"] == ["front", "wrist"]
    assert {"pose.position.x", "joints.angle.0"} <= set(detail["metrics"])
    assert (ambiguous_status, ambiguous["code"]) == (409, "ambiguous_session")
    assert by_query_status == 200 and by_query["robot_id"] == fleet["b"]
    assert (missing_status, missing["code"]) == (404, "not_found")


async def test_a_running_session_is_listed_as_soon_as_its_first_samples_reach_the_live_view(
        api: RunningApi, landing: Landing, ids: dict[str, str]) -> None:
    start = now_us()
    robot = SimulatedRobot(ids["robot"], ids["session"], start)
    landing.telemetry(robot.records(2), to=("redis",))  # the MongoDB sink has not landed anything yet
    api_id = f"{ids['robot']}:{ids['session']}"
    async with aiohttp.ClientSession() as http:
        _, listed = await get(http, f"{api.url}/v1/sessions?robot={ids['robot']}")
        _, robots = await get(http, f"{api.url}/v1/robots")
        status, one = await get(http, f"{api.url}/v1/sessions/{api_id}")
        landing.session_start(ids["robot"], ids["session"], start)  # now MongoDB has it too
        _, later = await get(http, f"{api.url}/v1/sessions?robot={ids['robot']}")
    running = [s for s in listed["sessions"] if s["id"] == api_id]
    assert len(running) == 1 and running[0]["status"] == "running"
    assert running[0]["last_seen"] == micros_to_iso(start + 190_000)  # its newest sample (20 at 100 Hz)
    assert {"robot_id": ids["robot"], "sessions": 1} == {
        k: v for r in robots["robots"] if r["robot_id"] == ids["robot"] for k, v in r.items()
        if k in ("robot_id", "sessions")}
    assert status == 200 and one["status"] == "running" and "pose.position.x" in one["metrics"]
    assert [s["id"] for s in later["sessions"]].count(api_id) == 1  # listed once, from MongoDB now
    assert next(s for s in later["sessions"] if s["id"] == api_id)["config"] is not None
