"""The blocking client from a plain control loop, through a real gateway into Kafka: every seq is
acked and lands; while the gateway is down ``send`` still returns at once, ``flush`` says how much
waits, and it all lands once the gateway is back."""

from __future__ import annotations

import time
from pathlib import Path

from robostream.config import Settings
from robostream.schemas.examples import example_payload, time_series_payload
from robostream_sdk import ClientOptions, FlushResult, SyncRobotClient

from .conftest import TOKENS, GatewayRunner, landed

ROBOT = "robot_001"


def client_for(gateway: GatewayRunner, tmp_path: Path) -> SyncRobotClient:
    options = ClientOptions(spool_dir=tmp_path, backoff_initial_s=0.05, backoff_max_s=0.5)
    return SyncRobotClient(gateway.url, ROBOT, token=TOKENS[ROBOT], options=options)


def test_a_control_loop_streams_through_the_gateway_into_kafka(
    sd_settings: Settings, gateway: GatewayRunner, tmp_path: Path
) -> None:
    with client_for(gateway, tmp_path) as client:
        session = client.start_session()
        start = time.time()
        for i in range(1000):  # pose and joints at 100 Hz, a log line now and then
            client.send("time_series", time_series_payload(1), timestamp=start + i / 100)
            if i % 100 == 0:
                client.send("log", example_payload("log"))
        assert client.flush(timeout_s=60) == FlushResult(0, 0)
        counters = client.counters
        stats = client.end_session()
    assert stats.drained and stats.last_seq == 1009
    assert counters.acked == counters.created == 1010 and counters.lost == 0 and counters.rejected == 0
    assert landed(sd_settings).missing(f"{ROBOT}/{session}", 1009) == []


def test_while_the_gateway_is_down_send_returns_at_once_and_nothing_is_lost(
    sd_settings: Settings, gateway: GatewayRunner, tmp_path: Path
) -> None:
    client = client_for(gateway, tmp_path)
    try:
        session = client.start_session()
        gateway.stop()
        took = []
        for _ in range(300):
            begin = time.perf_counter()
            client.send("log", example_payload("log"))
            took.append(time.perf_counter() - begin)
        assert max(took) < 0.5 and sum(took) < 2.0, (max(took), sum(took))
        waiting = client.flush(timeout_s=1.0)
        assert not waiting and waiting.unacked_messages == 300 and client.counters.lost == 0
        gateway.start()
        assert client.flush(timeout_s=60) == FlushResult(0, 0)
        assert client.end_session().drained
    finally:
        if gateway.gateway is None:
            gateway.start()
        client.close()
    assert landed(sd_settings).missing(f"{ROBOT}/{session}", 299) == []
