"""Every query parameter ``openapi.json`` documents is accepted by its route, against real data:
each route is called with all of them at once and answers as without them (no 400)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp

from robostream.topics import StatsResolution
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, now_us

MINUTE_US = 60_000_000


async def test_every_documented_parameter_is_accepted(api: RunningApi, landing: Landing,
                                                      ids: dict[str, str]) -> None:
    robot, session = ids["robot"], ids["session"]
    start = (now_us() // MINUTE_US - 10) * MINUTE_US
    landing.session_start(robot, session, start)
    records = SimulatedRobot(robot, session, start, rate_hz=1.0).records(60)
    landing.telemetry(records)
    landing.stats(records, resolutions=(StatsResolution.MINUTE,))
    landing.image(robot, session, start + 1_000_000, seq=0, to=("s3", "mongo"))
    span = {"from": str(start / 1e6), "to": str((start + 5 * MINUTE_US) / 1e6)}
    both = {"robot": robot, "session": session}
    queries: dict[str, dict[str, str]] = {
        "/v1/robots": {},
        "/v1/sessions": {"robot": robot, **span, "limit": "5"},
        "/v1/sessions/{id}": {"robot": robot},
        "/v1/telemetry": {**both, **span, "fields": "pose", "max_points": "10", "format": "ndjson"},
        "/v1/frames": {**both, "camera": "front", "kind": "rgb", "tier": "original", **span, "limit": "5"},
        "/v1/frames/{id}": {"kind": "rgb", "tier": "original"},
        "/v1/stats/{metric}": {**both, "resolution": "1m", **span, "limit": "5"},
        "/v1/live": {**both, "types": "time_series,stats", "access_token": "unused"},
        "/healthz": {}, "/openapi.json": {}, "/metrics": {},
    }
    answers: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api.url}/openapi.json") as response:
            document = await response.json()
        documented = {path: {p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query"}
                      for path, item in document["paths"].items() if path != "/" and "get" in item}
        assert {path: set(query) for path, query in queries.items()} == documented

        async def get(route: str, **path: str) -> tuple[int, Any]:
            url = f"{api.url}{route.format(**path)}?{urlencode(queries[route])}"
            async with http.get(url, allow_redirects=False) as response:
                is_json = response.content_type == "application/json"
                return response.status, await response.json() if is_json else await response.text()

        for route in ("/v1/robots", "/v1/sessions", "/v1/telemetry", "/v1/frames", "/openapi.json",
                      "/metrics"):
            answers[route] = await get(route)
        answers["/v1/sessions/{id}"] = await get("/v1/sessions/{id}", id=f"{robot}:{session}")
        answers["/v1/stats/{metric}"] = await get("/v1/stats/{metric}", metric="pose.position.x")
        frame_id = answers["/v1/frames"][1]["frames"][0]["id"]
        answers["/v1/frames/{id}"] = await get("/v1/frames/{id}", id=frame_id)
        status, health = await get("/healthz")
        assert status in (200, 503) and "status" in health  # 503: a shared store is degraded
        live_url = f"{api.ws_url}/v1/live?{urlencode(queries['/v1/live'])}"
        async with http.ws_connect(live_url) as ws:
            hello = await ws.receive_json(timeout=10)
    assert {route: status for route, (status, _) in answers.items()} == {
        "/v1/robots": 200, "/v1/sessions": 200, "/v1/telemetry": 200, "/v1/frames": 200,
        "/openapi.json": 200, "/metrics": 200, "/v1/sessions/{id}": 200, "/v1/stats/{metric}": 200,
        "/v1/frames/{id}": 307}
    assert [s["session_id"] for s in answers["/v1/sessions"][1]["sessions"]] == [session]
    assert answers["/v1/telemetry"][1].strip()  # rows
    assert [f["camera_id"] for f in answers["/v1/frames"][1]["frames"]] == ["front"]
    assert answers["/v1/stats/{metric}"][1]["windows"]
    assert hello == {"type": "hello", "robot_id": robot, "session_id": session,
                     "types": ["time_series", "stats"], "queue_size": hello["queue_size"]}
