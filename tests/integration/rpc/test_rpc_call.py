"""Calling robots end to end on the real test stack: ``POST /v1/robots/{id}/rpc`` and
``robostream rpc call`` write the request to Kafka, the real gateway delivers it to a simulated
robot over its WebSocket, and its answer comes back. An offline robot and one that answers after
the deadline give a clear timeout at the deadline; a call needs the write token."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgpack
import requests
from confluent_kafka.admin import AdminClient, NewTopic

from robostream.config import Settings
from robostream.rpc import RpcCaller, RpcCallError, RpcReply
from robostream.simulator import SimulatedRobot
from robostream.topics import rpc_requests_topic, rpc_responses_topic
from tests.integration.api.helpers import RunningApi
from tests.integration.gateway.clients import WsRobot

from .conftest import READ_TOKEN, TOKENS, WRITE_TOKEN, RunningGateway

WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}


def call(api: RunningApi, robot_id: str, body: dict[str, Any], headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, Any], float]:
    """Status, JSON body and seconds taken of one robot call through the API."""
    started = time.monotonic()
    response = requests.post(f"{api.url}/v1/robots/{robot_id}/rpc", json=body,
                             headers=WRITE if headers is None else headers, timeout=60)
    return response.status_code, response.json(), time.monotonic() - started


def cli(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "robostream", "rpc", "call", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    return done, time.monotonic() - started


def test_a_simulated_robot_answers_ping_and_set_exposure_through_the_api(
        api: RunningApi, robot: SimulatedRobot) -> None:
    status, body, _ = call(api, "robot_001", {"method": "ping", "timeout_s": 15})
    assert status == 200, body
    assert body["status"] == "ok" and body["result"]["pong"] is True
    assert body["result"]["robot_id"] == "robot_001" and body["error"] is None

    status, body, _ = call(api, "robot_001", {"method": "camera.set_exposure",
                                              "params": {"camera": "front", "exposure_ms": 8}})
    assert status == 200, body
    assert body["result"] == {"camera": "front", "exposure_ms": 8.0, "previous_ms": 10.0}
    assert robot.rpc.exposure_ms["front"] == 8.0  # the robot's camera now renders at 8 ms


def test_the_robots_errors_come_back_as_its_answer(api: RunningApi, robot: SimulatedRobot) -> None:
    status, body, _ = call(api, "robot_001", {"method": "camera.set_exposure", "params": {"exposure_ms": -3}})
    assert status == 200 and body["status"] == "error", body
    assert body["error"]["code"] == "invalid_params" and "exposure_ms" in body["error"]["message"]
    status, body, _ = call(api, "robot_001", {"method": "self_destruct"})
    assert status == 200 and body["error"]["code"] == "unknown_method", body


def test_the_cli_calls_a_robot_and_prints_its_answer(cli_env: dict[str, str], robot: SimulatedRobot) -> None:
    before = robot.rpc.exposure_ms["front"]
    done, _ = cli(cli_env, "--robot", "robot_001", "camera.set_exposure", "--params",
                  '{"exposure_ms": 12.5}', "--timeout", "15")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"camera": "front", "exposure_ms": 12.5, "previous_ms": before}
    assert robot.rpc.exposure_ms["front"] == 12.5
    done, _ = cli(cli_env, "--robot", "robot_001", "ping")
    assert done.returncode == 0 and json.loads(done.stdout)["pong"] is True, done.stderr
    done, _ = cli(cli_env, "--robot", "robot_001", "self_destruct")
    assert done.returncode == 1 and done.stdout == ""
    assert "unknown_method" in done.stderr and "robot robot_001 answered self_destruct" in done.stderr


def test_an_offline_robot_is_a_timeout_at_the_deadline(api: RunningApi, cli_env: dict[str, str],
                                                       gateway: RunningGateway) -> None:
    status, body, took = call(api, "robot_off", {"method": "ping", "timeout_s": 2})
    assert status == 504, body
    assert body == {"code": "timeout", "message": "no answer from robot robot_off to ping within 2 s: "
                                                  "robot robot_off was not connected before the deadline"}
    assert 2 <= took < 4.5  # the deadline plus the gateway's turn, never the caller's 2 s grace on top

    done, took = cli(cli_env, "--robot", "robot_off", "ping", "--timeout", "2")
    assert done.returncode == 3 and done.stdout == ""
    assert "timeout: no answer from robot robot_off to ping within 2 s" in done.stderr
    assert "was not connected before the deadline" in done.stderr
    assert took < 15  # interpreter start + Kafka metadata + the 2 s


def test_a_late_answer_is_a_504_and_the_next_call_still_works(api: RunningApi,
                                                              gateway: RunningGateway) -> None:
    late = WsRobot(gateway.ws_url, TOKENS["robot_late"], None)
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(call, api, "robot_late", {"method": "arm.home", "timeout_s": 2})
            request, _ = late.until("rpc_request")
            while time.time() < request["deadline"] + 0.5:  # answer half a second after the deadline
                time.sleep(0.1)
            late.send(msgpack.packb({"type": "rpc_response", "correlation_id": request["correlation_id"],
                                     "status": "ok", "result": {"homed": "late"}}))
            refused, _ = late.until("rpc_nack")
            status, body, _ = first.result(30)

            second = pool.submit(call, api, "robot_late", {"method": "arm.home", "timeout_s": 10})
            request2, _ = late.until("rpc_request")
            late.send(msgpack.packb({"type": "rpc_response", "correlation_id": request2["correlation_id"],
                                     "status": "ok", "result": {"homed": "on time"}}))
            status2, body2, _ = second.result(30)
    finally:
        late.close()
    assert status == 504 and "robot robot_late did not answer before the deadline" in body["message"], body
    assert refused["code"] == "rpc_unknown"  # the gateway tells the robot it was too late
    assert status2 == 200 and body2["result"] == {"homed": "on time"}, body2
    assert body2["correlation_id"] == request2["correlation_id"] != request["correlation_id"]


def test_a_call_needs_the_write_token(api: RunningApi, robot: SimulatedRobot) -> None:
    calls = robot.rpc.calls
    status, body, _ = call(api, "robot_001", {"method": "ping"}, headers={})
    assert (status, body["code"]) == (401, "unauthorized")
    reader = {"Authorization": f"Bearer {READ_TOKEN}"}
    status, body, _ = call(api, "robot_001", {"method": "ping"}, headers=reader)
    assert (status, body["code"]) == (403, "forbidden") and "write token" in body["message"]
    assert robot.rpc.calls == calls  # nothing reached the robot
    assert requests.get(f"{api.url}/v1/robots", headers=reader, timeout=30).status_code == 200  # it reads


def test_an_unknown_robot_is_refused_at_once(api: RunningApi, cli_env: dict[str, str],
                                             gateway: RunningGateway) -> None:
    status, body, took = call(api, "robot_zz", {"method": "ping", "timeout_s": 20})
    assert (status, body) == (404, {"code": "unknown_robot", "message": "robot robot_zz is not registered"})
    assert took < 5  # the gateway answers not_found without waiting for the deadline
    done, _ = cli(cli_env, "--robot", "robot_zz", "ping", "--timeout", "20")
    assert done.returncode == 4 and "refused: unknown_robot: robot robot_zz is not registered" in done.stderr
    done, _ = cli(cli_env, "--robot", "robot_001", "ping", "--params", "{exposure: 8}")
    assert done.returncode == 2 and "not JSON" in done.stderr


def test_concurrent_calls_each_get_their_own_answer(api: RunningApi, robot: SimulatedRobot) -> None:
    values = [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]
    with ThreadPoolExecutor(len(values)) as pool:
        answers = list(pool.map(lambda ms: call(api, "robot_001", {
            "method": "set_parameter", "params": {"name": f"p{ms}", "value": ms}}), values))
    assert [(status, body["result"]["name"], body["result"]["value"]) for status, body, _ in answers] == [
        (200, f"p{ms}", ms) for ms in values]
    assert len({body["correlation_id"] for _, body, _ in answers}) == len(values)


def test_without_a_gateway_the_call_ends_soon_after_its_deadline(rpc_settings: Settings,
                                                                kafka_bootstrap: str) -> None:
    lonely = rpc_settings.model_copy(update={"topics": rpc_settings.topics.model_copy(
        update={"prefix": f"rpcnogw{uuid.uuid4().hex[:8]}"})})
    names = [rpc_requests_topic(lonely), rpc_responses_topic(lonely)]
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in names]).values():
        future.result()
    try:
        reply = asyncio.run(_call_alone(lonely))
    finally:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()
    assert reply.status == "timeout" and reply.error is not None and reply.error.code == "no_answer"
    assert "is a gateway running" in reply.error.message
    assert 1000 + 500 <= reply.elapsed_ms < 1000 + 500 + 1500  # the deadline, then the 0.5 s grace


async def _call_alone(settings: Settings) -> RpcReply:
    async with RpcCaller(settings, grace_s=0.5) as caller:
        return await caller.call("robot_001", "ping", {}, timeout_s=1.0)


def test_the_cli_says_once_when_kafka_does_not_answer(cli_env: dict[str, str]) -> None:
    nowhere = {**cli_env, "ROBOSTREAM_KAFKA__BOOTSTRAP": "127.0.0.1:1"}
    done, took = cli(nowhere, "--robot", "robot_001", "ping")
    assert done.returncode == 5 and done.stdout == ""
    assert done.stderr.startswith("error: cannot read rpc") and "from Kafka at 127.0.0.1:1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # no librdkafka noise, no traceback
    assert took < 30


def test_the_api_answers_503_when_kafka_does_not_answer(rpc_settings: Settings) -> None:
    nowhere = rpc_settings.model_copy(update={"kafka": rpc_settings.kafka.model_copy(
        update={"bootstrap": "127.0.0.1:1"})})
    with RunningApi(nowhere) as lonely:
        status, body, took = call(lonely, "robot_001", {"method": "ping", "timeout_s": 5})
    assert status == 503 and body["code"] == "rpc_unavailable", body
    assert "from Kafka at 127.0.0.1:1" in body["message"] and took < 30


def test_a_caller_that_gives_up_on_kafka_says_so_at_its_own_deadline(rpc_settings: Settings) -> None:
    """start()'s deadline ends before the reader's own Kafka timeouts (10 s): the same sentence as
    when the reader fails first, at once, without waiting for that reader."""
    nowhere = rpc_settings.model_copy(update={"kafka": rpc_settings.kafka.model_copy(
        update={"bootstrap": "127.0.0.1:1"})})

    async def start() -> str:
        caller = RpcCaller(nowhere)
        try:
            await caller.start(wait_s=0.5)
        except RpcCallError as exc:
            return str(exc)
        raise AssertionError("started without Kafka")

    began = time.monotonic()
    message = asyncio.run(start())
    assert time.monotonic() - began < 8  # the reader's list_topics alone waits 10 s
    assert message.startswith(f"cannot read {rpc_responses_topic(nowhere)} from Kafka at 127.0.0.1:1")
    assert message.endswith("no answer within 0.5 s")
