"""Slow clients (slowloris) on the API's plain HTTP port: cut within the read deadlines while
normal clients are served."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from robostream.config import Settings
from robostream.gateway import hash_token
from tests.integration.api.helpers import RunningApi
from tests.integration.slow_clients import slowloris, trickle

HEADER_S = 2.0
BODY_S = 2.0
SLACK_S = 1.5  # timer and scheduling slack on 2 shared cores
WRITE_TOKEN = "slow-clients-write-token"


@pytest.fixture(scope="module")
def slow_api(api_settings: Settings) -> Iterator[tuple[str, int]]:
    """The API on plain http:// with short read deadlines and a write token."""
    api = api_settings.api.model_copy(update={
        "header_timeout_s": HEADER_S, "body_timeout_s": BODY_S, "write_tokens": [hash_token(WRITE_TOKEN)]})
    with RunningApi(api_settings.model_copy(update={"api": api})) as running:
        address = urlsplit(running.url)
        assert address.scheme == "http" and address.hostname and address.port
        yield address.hostname, address.port


def rpc_head(length: int) -> bytes:
    return (f"POST /v1/robots/robot_001/rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def test_fifty_trickling_requests_get_408_and_are_closed_while_a_normal_client_is_served(
    slow_api: tuple[str, int],
) -> None:
    cuts, probes = asyncio.run(slowloris(*slow_api, "/v1/robots", clients=50, every_s=0.2,
                                         give_up_s=HEADER_S + 8, probe_path="/openapi.json"))
    assert [c.status for c in cuts] == [408] * 50
    assert max(c.after_s for c in cuts) < HEADER_S + SLACK_S, sorted(c.after_s for c in cuts)[-3:]
    assert min(c.sent for c in cuts) > 20  # they were trickling until cut, not refused at once
    body = orjson.loads(cuts[0].answer.split(b"\r\n\r\n", 1)[1])
    assert body == {"code": "request_timeout",
                    "message": f"request headers not received within {HEADER_S:g}s (api.header_timeout_s)"}
    assert len(probes) >= 3 and all(status == 200 for status, _ in probes), probes
    assert max(seconds for _, seconds in probes) < 1.0, probes


def test_a_second_request_trickled_on_a_kept_alive_connection_is_cut_too(slow_api: tuple[str, int]) -> None:
    first = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
    cut = asyncio.run(trickle(*slow_api, first + b"GET /openapi.json HTTP/1.1\r\n", b"X-Slow: " + b"a" * 100,
                              every_s=0.2, give_up_s=HEADER_S + 8))
    assert cut.status == 200  # the first request was answered
    assert cut.answer.count(b"HTTP/1.1 408 Request Timeout\r\n") == 1  # then the second one was cut
    assert cut.after_s < HEADER_S + SLACK_S


def test_a_trickling_body_gets_408_and_is_closed(slow_api: tuple[str, int]) -> None:
    body = orjson.dumps({"method": "ping", "params": {}, "pad": "x" * 200})
    cut = asyncio.run(trickle(*slow_api, rpc_head(len(body)), body, every_s=0.1, give_up_s=BODY_S + 8))
    assert cut.status == 408
    assert BODY_S - 0.2 < cut.after_s < BODY_S + SLACK_S
    assert b"Connection: close" in cut.answer
    assert orjson.loads(cut.answer.split(b"\r\n\r\n", 1)[1])["message"] == (
        f"request body not received within {BODY_S:g}s (api.body_timeout_s)")


def test_a_slow_body_within_the_deadline_is_answered(slow_api: tuple[str, int]) -> None:
    """5 bytes over about a second: read in full and answered (here a 400: not a call)."""
    cut = asyncio.run(trickle(*slow_api, rpc_head(5), b"[1,2]", every_s=0.2, give_up_s=BODY_S + 1))
    assert cut.status == 400
    assert orjson.loads(cut.answer.split(b"\r\n\r\n", 1)[1])["code"] == "invalid_body"
