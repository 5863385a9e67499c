"""``GET /metrics`` on the API: live fan-out (clients connected, messages forwarded) and query
latency per route, moving as clients connect, data lands in Redis and queries are answered."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, now_us
from tests.integration.api.test_live import land_in_thread, receive
from tests.prometheus import Scrape, scrape


async def scrape_async(api: RunningApi) -> Scrape:
    return await asyncio.to_thread(scrape, api.url + "/metrics")


async def test_the_api_metrics_show_live_fan_out_and_query_latency(
        api: RunningApi, landing: Landing, ids: dict[str, str]) -> None:
    robot = SimulatedRobot(ids["robot"], ids["session"], now_us())
    url = f"{api.ws_url}/v1/live?robot={ids['robot']}&session={ids['session']}&types=time_series"
    before = await scrape_async(api)
    clients = before.value("robostream_api_live_clients")
    forwarded = before.value("robostream_api_live_messages_forwarded_total")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as first, http.ws_connect(url) as second:
            for ws in (first, second):
                assert (await receive(ws))["type"] == "hello"
                assert (await receive(ws))["type"] == "snapshot"
            during = await scrape_async(api)
            await land_in_thread(landing, robot.records(3))
            for ws in (first, second):
                for _ in range(3):
                    assert (await receive(ws))["type"] == "time_series"
            landed = await scrape_async(api)
        for _ in range(50):  # the server notices the closes
            after = await scrape_async(api)
            if after.value("robostream_api_live_clients") == clients:
                break
            await asyncio.sleep(0.1)
        sessions = await http.get(f"{api.url}/v1/sessions?robot={ids['robot']}")
        assert sessions.status == 200
        missing = await http.get(f"{api.url}/v1/sessions/nope?robot={ids['robot']}")
        assert missing.status in (400, 404)
        queried = await scrape_async(api)
    assert during.value("robostream_api_live_clients") == clients + 2
    assert landed.value("robostream_api_live_messages_forwarded_total") == forwarded + 6  # 3 x 2 clients
    assert after.value("robostream_api_live_clients") == clients
    count = "robostream_api_query_seconds_count"
    assert queried.value(count, route="/v1/sessions") == after.get(count, route="/v1/sessions") + 1
    assert queried.value("robostream_api_query_seconds_sum", route="/v1/sessions") > 0
    assert queried.value("robostream_api_requests_total", route="/v1/sessions/{id}",
                         status=str(missing.status)) >= 1
    assert queried.value("robostream_api_requests_total", route="/v1/live", status="101") >= 2
    assert not [s for s in queried.samples if s.name == count and s.labels["route"] == "/v1/live"]
