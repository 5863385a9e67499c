"""Slow clients (slowloris) on the gateway's plain HTTP port: cut within the read deadlines while
normal clients are served."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from robostream.config import Settings

from ..slow_clients import slowloris, trickle
from .clients import ROBOTS
from .conftest import RunningGateway

HEADER_S = 2.0
IDLE_S = 1.5
BODY_S = 2.0
SLACK_S = 1.5  # timer and scheduling slack on 2 shared cores


@pytest.fixture(scope="module")
def plain(gw_settings: Settings) -> Iterator[RunningGateway]:
    """A gateway on plain http:// with short read deadlines."""
    gateway = gw_settings.gateway.model_copy(update={
        "tls_cert": None, "tls_key": None, "header_timeout_s": HEADER_S, "body_timeout_s": BODY_S,
        "idle_timeout_s": IDLE_S})
    running = RunningGateway(gw_settings.model_copy(update={"gateway": gateway}))
    yield running
    running.stop()


def test_fifty_trickling_requests_get_408_and_are_closed_while_a_normal_client_is_served(
    plain: RunningGateway,
) -> None:
    address = urlsplit(plain.url)
    assert address.scheme == "http" and address.hostname and address.port
    cuts, probes = asyncio.run(slowloris(address.hostname, address.port, "/v1/stream", clients=50,
                                         every_s=0.2, give_up_s=HEADER_S + 8, probe_path="/healthz"))
    assert [c.status for c in cuts] == [408] * 50
    assert max(c.after_s for c in cuts) < HEADER_S + SLACK_S, sorted(c.after_s for c in cuts)[-3:]
    assert min(c.sent for c in cuts) > 20  # they were trickling until cut, not refused at once
    body = orjson.loads(cuts[0].answer.split(b"\r\n\r\n", 1)[1])
    assert body["code"] == "request_timeout" and "gateway.header_timeout_s" in body["message"]
    assert len(probes) >= 3 and all(status == 200 for status, _ in probes), probes
    assert max(seconds for _, seconds in probes) < 1.0, probes


def test_a_stalling_ingest_body_is_ended_at_the_idle_timeout(plain: RunningGateway) -> None:
    """POST /v1/ingest is an open-ended stream of batches: bounded per chunk (gateway.idle_timeout_s)."""
    address = urlsplit(plain.url)
    assert address.hostname and address.port
    head = (f"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ROBOTS['robot_a']}\r\n"
            "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    cut = asyncio.run(trickle(address.hostname, address.port, head, b"1\r\n \r\n" * 20,
                              every_s=IDLE_S + 1.0, give_up_s=15))
    assert cut.status == 200  # the ack stream had started
    assert b"idle_timeout" in cut.answer
    assert cut.after_s < IDLE_S + BODY_S + SLACK_S  # then the unread rest is drained for body_timeout_s
