"""The application without its stores: the OpenAPI document, errors, read tokens and CORS.

Clients of Redis and MongoDB connect lazily, so requests refused before any read never need a
server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from robostream.api import create_app, hash_token, openapi_document
from robostream.api.app import ROUTES
from robostream.config import ApiSettings, Settings


def settings_with(**api: object) -> Settings:
    base = Settings()
    return base.model_copy(update={"api": base.api.model_copy(update=api)})


@pytest_asyncio.fixture(loop_scope="function")
async def client() -> AsyncIterator[TestClient]:
    app = create_app(settings_with(read_tokens=[hash_token("s3cret")], anonymous_read=False,
                                   cors_origins=["http://dash.example"]))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def test_the_document_describes_every_route_and_only_those() -> None:
    document = openapi_document()
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert described == set(ROUTES)
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["responses"], path
            if path.startswith("/v1/"):
                assert {"400", "401", "503"} <= set(operation["responses"]), path


async def test_reads_need_a_token(client: TestClient) -> None:
    response = await client.get("/v1/robots")
    assert response.status == 401 and (await response.json())["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = await client.get("/v1/robots", headers={"Authorization": "Bearer wrong"})
    assert response.status == 401
    response = await client.get("/v1/telemetry?robot=..", headers={"Authorization": "Bearer s3cret"})
    assert response.status == 400 and (await response.json())["code"] == "invalid_id"  # past the check


async def test_public_pages(client: TestClient) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.") and "/v1/telemetry" in document["paths"]
    page = await client.get("/")
    assert page.status == 200 and "viewer.js" in await page.text()
    assert (await client.get("/static/viewer.js")).status == 200


async def test_errors_are_json(client: TestClient) -> None:
    token = {"Authorization": "Bearer s3cret"}
    for path, headers, status, code in (("/nope", token, 404, "not_found"),
                                        ("/v1/live?robot=r&session=s", {}, 401, "unauthorized")):
        response = await client.get(path, headers=headers)
        assert response.status == status and (await response.json())["code"] == code
    response = await client.post("/v1/robots", headers=token)
    assert response.status == 405 and (await response.json())["code"] == "method_not_allowed"
    response = await client.get("/v1/live?robot=r&session=s", headers=token)
    assert response.status == 400 and (await response.json())["code"] == "websocket_required"
    response = await client.get("/v1/live?robot=r&session=s&types=video", headers=token)
    assert (await response.json())["code"] == "invalid_parameter"


async def test_cors_for_the_dashboard_origins_only(client: TestClient) -> None:
    preflight = await client.options("/v1/robots", headers={
        "Origin": "http://dash.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://dash.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    denied = await client.options("/v1/robots", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert denied.status == 403
    answer = await client.get("/v1/robots", headers={"Origin": "http://dash.example"})
    assert answer.status == 401  # errors carry CORS headers too: the page can read the reason
    assert answer.headers["Access-Control-Allow-Origin"] == "http://dash.example"
    other = await client.get("/v1/robots", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_read_tokens_are_sha256_digests() -> None:
    assert ApiSettings(read_tokens=[hash_token("t")]).read_tokens == [hash_token("t")]
    with pytest.raises(ValueError, match="sha256"):
        ApiSettings(read_tokens=["not-a-digest"])


def test_the_cli_runs_the_server() -> None:
    from typer.testing import CliRunner

    from robostream.cli.api_cmd import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "/v1/telemetry" in result.output and "--port" in result.output
