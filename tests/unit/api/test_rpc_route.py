"""``POST /v1/robots/{id}/rpc`` refusals that happen before any call: the write token (its own,
not a read token, never anonymous), the robot id and the JSON body. None of them needs Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from robostream.api import create_app, hash_token, openapi_document
from robostream.config import ApiSettings, Settings

READ, WRITE = "read-token-1234", "write-token-5678"


@pytest_asyncio.fixture(loop_scope="function")
async def client() -> AsyncIterator[TestClient]:
    base = Settings()
    settings = base.model_copy(update={"api": base.api.model_copy(update={
        "read_tokens": [hash_token(READ)], "write_tokens": [hash_token(WRITE)], "anonymous_read": True,
        "rpc_max_timeout_s": 30.0})})
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(client: TestClient, path: str, headers: dict[str, str], **body: Any) -> tuple[int, str]:
    response = await client.post(path, headers=headers, **body)
    payload = await response.json()
    assert set(payload) == {"code", "message"} and payload["message"], payload
    return response.status, payload["code"]


async def test_calls_need_a_write_token_even_when_reads_are_anonymous(client: TestClient) -> None:
    path, body = "/v1/robots/robot_001/rpc", {"json": {"method": "ping"}}
    assert await error_of(client, path, {}, **body) == (401, "unauthorized")
    assert await error_of(client, path, bearer(READ), **body) == (403, "forbidden")
    assert await error_of(client, path, bearer("guess"), **body) == (403, "forbidden")
    assert (await client.get("/v1/robots/robot_001/rpc", headers=bearer(WRITE))).status == 405


@pytest.mark.parametrize(("path", "body", "code"), [
    ("/v1/robots/robot..1/rpc", {"json": {"method": "ping"}}, "invalid_id"),
    ("/v1/robots/robot_001/rpc", {"data": b"{not json"}, "invalid_json"),
    ("/v1/robots/robot_001/rpc", {"json": {"params": {}}}, "invalid_body"),
    ("/v1/robots/robot_001/rpc", {"json": {"method": "rm -rf /"}}, "invalid_body"),
    ("/v1/robots/robot_001/rpc", {"json": {"method": "ping", "timeout_s": 0}}, "invalid_body"),
    ("/v1/robots/robot_001/rpc", {"json": {"method": "ping", "timeout_s": 31}}, "invalid_body"),
    ("/v1/robots/robot_001/rpc", {"json": {"method": "ping", "timeout": 3}}, "invalid_body"),
    ("/v1/robots/robot_001/rpc", {"json": ["ping"]}, "invalid_body"),
    ("/v1/robots/robot_001/rpc?wait=1", {"json": {"method": "ping"}}, "unknown_parameter"),
])
async def test_bad_input_is_a_400_naming_the_problem(client: TestClient, path: str, body: dict[str, Any],
                                                   code: str) -> None:
    assert await error_of(client, path, bearer(WRITE), **body) == (400, code)


async def test_the_body_message_names_the_field(client: TestClient) -> None:
    response = await client.post("/v1/robots/robot_001/rpc", headers=bearer(WRITE),
                                 json={"method": "ping", "timeout_s": -1})
    assert "timeout_s" in (await response.json())["message"]


def test_the_document_describes_the_body_and_the_write_token() -> None:
    operation = openapi_document()["paths"]["/v1/robots/{id}/rpc"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["method"] and set(body["properties"]) == {"method", "params", "timeout_s"}
    assert body["properties"]["timeout_s"]["nullable"] is True
    assert {"200", "400", "401", "403", "504"} <= set(operation["responses"])
    assert operation["security"] == [{"write": []}]


def test_write_tokens_are_sha256_digests() -> None:
    with pytest.raises(ValueError, match="sha256"):
        ApiSettings(write_tokens=["plaintext"])
