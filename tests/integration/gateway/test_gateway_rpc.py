"""RPC through the gateway: requests from Kafka reach a connected (simulated) robot over its
WebSocket; its response reaches Kafka with the same correlation id; absent robots time out."""

from __future__ import annotations

import ssl
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, decode_value, encode_value
from robostream.schemas.catalog import subject_name
from robostream.topics import rpc_requests_topic, rpc_responses_topic

from .clients import ROBOTS, WsRobot, headers_of, read_topics, value_of


class Caller:
    """The platform side: puts requests on the requests topic, reads responses."""

    def __init__(self, settings: Settings, registry_url: str) -> None:
        self.settings = settings
        self.resolver = ConfluentSchemaResolver(registry_url)
        self.producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "acks": "all"})

    def request(self, robot_id: str, method: str, params: dict[str, Any], deadline_s: float) -> str:
        correlation_id = uuid.uuid4().hex
        topic = rpc_requests_topic(self.settings)
        datum = {
            "timestamp": time.time_ns() // 1000,
            "robot_id": robot_id,
            "session_id": "s-rpc",
            "kind": "request",
            "correlation_id": correlation_id,
            "method": method,
            "params": msgpack.packb(params),
            "deadline": int((time.time() + deadline_s) * 1_000_000),
        }
        value = encode_value("rpc_event", datum, self.resolver, subject_name(topic))
        self.producer.produce(topic, value, f"{robot_id}/s-rpc".encode())
        assert self.producer.flush(10) == 0
        return correlation_id

    def response(self, correlation_id: str, timeout: float = 20) -> dict[str, Any]:
        def found(msgs: list[Any]) -> bool:
            return any(headers_of(m).get("correlation_id") == correlation_id for m in msgs)

        records = read_topics(
            self.settings.kafka.bootstrap, rpc_responses_topic(self.settings), found, timeout
        )
        match = [m for m in records if headers_of(m).get("correlation_id") == correlation_id]
        assert len(match) == 1, f"{len(match)} responses for {correlation_id}"
        name, datum = decode_value(value_of(match[0]), self.resolver)
        assert name == "rpc_event"
        return datum


@pytest.fixture(scope="module")
def caller(gw_settings: Settings, registry_url: str, gateway: Any) -> Iterator[Caller]:
    yield Caller(gw_settings, registry_url)


def test_rpc_round_trip_through_a_connected_robot(
    gateway: Any, caller: Caller, client_ssl: ssl.SSLContext
) -> None:
    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    try:
        correlation_id = caller.request("robot_a", "camera.set_exposure", {"exposure_ms": 5}, deadline_s=20)
        request, _ = robot.until("rpc_request")
        assert (request["correlation_id"], request["method"], request["params"]) == (
            correlation_id,
            "camera.set_exposure",
            {"exposure_ms": 5},
        )
        assert request["deadline"] > time.time()
        robot.send(
            msgpack.packb(
                {
                    "type": "rpc_response",
                    "correlation_id": correlation_id,
                    "status": "ok",
                    "result": {"applied": True},
                }
            )
        )
        receipt, _ = robot.until("rpc_ack")
    finally:
        robot.close()
    assert receipt == {"type": "rpc_ack", "correlation_id": correlation_id}
    response = caller.response(correlation_id)
    assert (response["kind"], response["status"], response["robot_id"], response["method"]) == (
        "response",
        "ok",
        "robot_a",
        "camera.set_exposure",
    )
    assert msgpack.unpackb(response["result"]) == {"applied": True}


def rpc_requests_read(gateway: Any, client_ssl: ssl.SSLContext) -> float:
    """The gateway's count of RPC requests it has read from Kafka (its /metrics)."""
    with urllib.request.urlopen(f"{gateway.url}/metrics", context=client_ssl, timeout=10) as resp:
        text = resp.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "robostream_gateway_rpc_total" and s.labels.get("outcome") == "requested")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_robot_gets_requests_sent_while_it_was_away_when_it_connects(
    gateway: Any, caller: Caller, client_ssl: ssl.SSLContext
) -> None:
    requested = rpc_requests_read(gateway, client_ssl)
    correlation_id = caller.request("robot_b", "arm.home", {}, deadline_s=30)
    # the gateway has read it (and so holds it for robot_b) before the robot connects
    wait_for(lambda: rpc_requests_read(gateway, client_ssl) > requested, 30, "the gateway reading it")
    robot = WsRobot(gateway.ws_url, ROBOTS["robot_b"], client_ssl, fmt="json")
    try:
        request, _ = robot.until("rpc_request")
        assert request["correlation_id"] == correlation_id
        robot.send(
            f'{{"type": "rpc_response", "correlation_id": "{correlation_id}", "status": "error", '
            '"error": {"code": "busy", "message": "arm is moving"}}'
        )
        receipt, _ = robot.until("rpc_ack")
        robot.send('{"type": "rpc_response", "correlation_id": "nobody-asked", "status": "ok"}')
        unknown, _ = robot.until("rpc_nack")
    finally:
        robot.close()
    assert receipt["correlation_id"] == correlation_id
    assert unknown["code"] == "rpc_unknown"
    response = caller.response(correlation_id)
    assert (response["status"], response["error"]) == ("error", {"code": "busy", "message": "arm is moving"})


def test_requests_for_an_absent_robot_time_out_at_the_deadline(caller: Caller) -> None:
    correlation_id = caller.request("robot_c", "lidar.reset", {}, deadline_s=1.0)
    response = caller.response(correlation_id, timeout=20)
    assert response["status"] == "timeout"
    assert response["error"]["message"] == "robot robot_c was not connected before the deadline"


def test_requests_for_an_unknown_robot_get_not_found(caller: Caller) -> None:
    correlation_id = caller.request("robot_zz", "ping", {}, deadline_s=10)
    assert caller.response(correlation_id)["status"] == "not_found"
