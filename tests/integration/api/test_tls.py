"""``api.tls_cert`` / ``api.tls_key``: the API serves https (and wss) only, with the given
certificate; the local stack's health check follows it."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from robostream.config import Settings
from robostream.stack.servers import ApiService
from tests.integration.api.helpers import RunningApi
from tests.integration.gateway.tls import write_self_signed


@pytest.fixture(scope="module")
def api_tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed(tmp_path_factory.mktemp("api-tls"), "api")


@pytest.fixture(scope="module")
def tls_api(api_settings: Settings, api_tls_files: tuple[Path, Path]) -> Iterator[RunningApi]:
    cert, key = api_tls_files
    settings = api_settings.model_copy(update={
        "api": api_settings.api.model_copy(update={"tls_cert": cert, "tls_key": key}),
    })
    with RunningApi(settings) as running:
        yield running


def get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # a 503 still proves the TLS handshake worked
        return exc.code, json.loads(exc.read())


def test_the_api_answers_over_https_with_the_configured_certificate(
    tls_api: RunningApi, api_tls_files: tuple[Path, Path]
) -> None:
    assert tls_api.url.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(api_tls_files[0]))
    status, body = get(f"{tls_api.url}/healthz", trusted)
    assert status == 200 and body["status"] == "ok", body
    status, robots = get(f"{tls_api.url}/v1/robots", trusted)
    assert status == 200 and isinstance(robots, dict)


def test_plain_http_and_untrusted_clients_are_refused(tls_api: RunningApi) -> None:
    plain = tls_api.url.replace("https://", "http://", 1)
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        get(f"{plain}/healthz")
    with pytest.raises(urllib.error.URLError) as refused:  # the system CAs do not know this certificate
        get(f"{tls_api.url}/healthz", ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)


async def _live_hello(url: str, context: ssl.SSLContext) -> dict[str, object]:
    async with aiohttp.ClientSession() as client, client.ws_connect(
        f"{url}/v1/live?robot=rb-tls&session=s-tls", ssl=context, timeout=aiohttp.ClientWSTimeout(ws_close=5)
    ) as ws:
        message = await ws.receive_json(timeout=10)
        assert isinstance(message, dict)
        return message


def test_the_live_websocket_is_wss(tls_api: RunningApi, api_tls_files: tuple[Path, Path]) -> None:
    trusted = ssl.create_default_context(cafile=str(api_tls_files[0]))
    hello = asyncio.run(_live_hello(tls_api.ws_url, trusted))
    assert hello["type"] == "hello" and hello["robot_id"] == "rb-tls"


def test_the_stack_health_check_uses_https_and_accepts_the_self_signed_certificate(
    tls_api: RunningApi, api_settings: Settings
) -> None:
    settings = tls_api.settings.model_copy(update={
        "api": tls_api.settings.api.model_copy(update={"port": tls_api.server.port}),
    })
    service = ApiService(settings)
    assert service.base_url == f"https://127.0.0.1:{tls_api.server.port}"
    assert service.healthy()
    plain = ApiService(api_settings.model_copy(update={
        "api": api_settings.api.model_copy(update={"port": tls_api.server.port}),
    }))
    assert plain.base_url.startswith("http://") and not plain.healthy()  # http to a TLS port fails
