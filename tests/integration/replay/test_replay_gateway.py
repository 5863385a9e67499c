"""Replay a recorded session through the gateway as the robot (the robot SDK on a real gateway)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from robostream.config import RobotSettings, Settings
from robostream.replay import GatewayPublisher, SessionQuery, replay
from robostream.schemas import ConfluentSchemaResolver, DataType, Envelope
from robostream.topics import create_topics, topic_for
from tests.integration.replay.helpers import ROBOT, decoded, produce, read_topics, recorded_session

TOKEN = "replay-token-0123456789"
TYPES = (DataType.TIME_SERIES, DataType.LOG, DataType.IMAGES)


@pytest.fixture(scope="module")
def gateway_settings(rp_settings: Settings, tag: str) -> Settings:
    """A second catalogue (prefix ``rp<tag>_gw``: the gateway's), the robot with a token."""
    from robostream.gateway import hash_token

    mine = rp_settings.model_copy(update={
        "topics": rp_settings.topics.model_copy(update={"prefix": f"rp{tag}_gw"}),
        "robots": [RobotSettings(id=ROBOT, token_sha256=hash_token(TOKEN))],
    })
    report = create_topics(mine)
    assert report.ok, [r.error for r in report.results if r.error]
    return mine  # its topics contain "rp<tag>": the module fixture deletes them


@pytest.fixture(scope="module")
def gateway_url(gateway_settings: Settings) -> Iterator[str]:
    """A real gateway (plain ws://, in this process on its own event loop thread)."""
    from robostream.gateway import Gateway

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    gateway = Gateway(gateway_settings, host="127.0.0.1", port=0)
    asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(90)
    try:
        yield gateway.url
    finally:
        asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_session_replayed_through_the_gateway_lands_as_a_new_session_of_the_robot(
    rp_settings: Settings, gateway_settings: Settings, gateway_url: str,
    resolver: ConfluentSchemaResolver, tag: str,
) -> None:
    session = f"g-{tag}"
    original = recorded_session(session, time.time() - 30, telemetry=30, logs=3, images=2)
    produce(rp_settings, resolver, original)

    publisher = GatewayPublisher(rp_settings, gateway_url, ROBOT, f"{session}-replay", token=TOKEN)
    report = replay(rp_settings, SessionQuery(ROBOT, session, TYPES), publisher, resolver, speed=None)
    assert report.records == len(original) == 35

    landed: list[Envelope] = decoded(
        read_topics(gateway_settings, [topic_for(dt, gateway_settings) for dt in TYPES]), resolver)
    landed.sort(key=lambda e: e.seq)
    assert {e.session_id for e in landed} == {f"{session}-replay"}
    assert [e.seq for e in landed] == list(range(len(original)))  # the SDK numbers them again
    assert [(e.data_type, e.timestamp_us, e.payload) for e in landed] == [
        (e.data_type, e.timestamp_us, e.payload) for e in original]
