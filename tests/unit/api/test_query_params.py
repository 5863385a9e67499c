"""Every route accepts exactly the query parameters its OpenAPI document lists: a misspelt one is
a ``400 unknown_parameter`` naming it and the accepted ones, never silently ignored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from robostream.api import create_app, openapi_document
from robostream.api.app import ROUTES
from robostream.api.openapi import QUERIES
from robostream.config import ApiSettings, Settings

FRAME = "robot_001:session-1:front-1795600000000000"


@pytest_asyncio.fixture(loop_scope="function")
async def client() -> AsyncIterator[TestClient]:
    base = Settings()
    settings = base.model_copy(update={"api": base.api.model_copy(update={"anonymous_read": True})})
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


def documented(path: str) -> list[dict[str, Any]]:
    """The query parameters ``openapi.json`` lists for ``path`` (its one operation: GET, or POST)."""
    (operation,) = openapi_document()["paths"][path].values()
    return [p for p in operation.get("parameters", []) if p["in"] == "query"]


async def test_a_misspelt_filter_is_refused_not_ignored(client: TestClient) -> None:
    response = await client.get("/v1/sessions?robot_id=robot_001")
    assert response.status == 400
    assert await response.json() == {
        "code": "unknown_parameter",
        "message": "unknown query parameter 'robot_id' (accepted: robot, from, to, limit)"}


@pytest.mark.parametrize(("route", "query", "unknown"), [
    ("/v1/robots", "robot=robot_001", ["robot"]),
    ("/v1/sessions", "robot=robot_001&limt=5&sort=asc", ["limt", "sort"]),
    ("/v1/sessions/{id}", "robot_id=", ["robot_id"]),
    ("/v1/telemetry", "robot=r&session=s&field=pose", ["field"]),
    ("/v1/frames", "robot=r&session=s&camera_id=front", ["camera_id"]),
    ("/v1/frames/{id}", "knd=depth", ["knd"]),
    ("/v1/stats/{metric}", "robot=r&session=s&resolutoin=1s", ["resolutoin"]),
    ("/v1/live", "robot=r&session=s&type=images", ["type"]),
    ("/healthz", "verbose=1", ["verbose"]),
    ("/openapi.json", "v=2", ["v"]),
])
async def test_unknown_parameters_are_named_with_the_accepted_ones(
        client: TestClient, route: str, query: str, unknown: list[str]) -> None:
    path = route.replace("{id}", "robot_001:session-1" if "sessions" in route else FRAME)
    response = await client.get(f"{path.replace('{metric}', 'pose.position.x')}?{query}")
    body = await response.json()
    assert response.status == 400 and body["code"] == "unknown_parameter", body
    names = ", ".join(repr(name) for name in unknown)
    accepted = [p["name"] for p in documented(route)]
    takes = f"accepted: {', '.join(accepted)}" if accepted else "this route takes no query parameters"
    plural = "s" if len(unknown) > 1 else ""
    assert body["message"] == f"unknown query parameter{plural} {names} ({takes})"


def example(schema: dict[str, Any]) -> str:
    """A valid value of a documented parameter, from its schema alone."""
    if "enum" in schema:
        return str(schema["enum"][-1])
    if schema["type"] == "integer":
        return str(schema.get("maximum", schema["minimum"]))
    if "pattern" in schema:
        return "robot_001"
    return str(schema.get("example", "token"))


@pytest.mark.parametrize("route", sorted(QUERIES))
def test_every_documented_parameter_is_accepted(route: str) -> None:
    query = {p["name"]: example(p["schema"]) for p in documented(route)}
    QUERIES[route].parse(query, ApiSettings())  # documented values pass: no ApiError


def test_every_api_route_has_a_query_model() -> None:
    assert set(QUERIES) == {path for _, path in ROUTES} - {"/"}  # "/" is the viewer page
