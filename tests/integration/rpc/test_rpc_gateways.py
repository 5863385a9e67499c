"""Two gateways behind a load balancer behave as one for RPC, on the real test stack.

Gateway A is a ``robostream gateway`` subprocess (so it can be kill -9'd), gateway B runs in this
process. Simulated robots reach them through a TCP load balancer each (first gateway in its order
that accepts the connection), so a test moves a robot by changing the order and cutting its
connection. Calls go through the API and :class:`RpcCaller`; the responses topic is read back to
show every call got exactly one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgpack
import pytest
import requests
import yaml
from confluent_kafka import Consumer, TopicPartition

from robostream.config import RobotSettings, Settings
from robostream.gateway import Gateway, hash_token
from robostream.rpc import RpcCaller, RpcReply
from robostream.simulator import SimulationOptions, run_simulation
from robostream.topics import create_topics, rpc_responses_topic
from tests.conftest import TEST_STACK_ENV
from tests.integration.api.helpers import RunningApi
from tests.integration.conftest import delete_prefix_topics
from tests.integration.gateway.clients import LoopThread, WsRobot
from tests.integration.gateway.conftest import free_port
from tests.prometheus import scrape

SIMULATED = ("robot_001", "robot_002", "robot_003", "robot_004")
TOKENS = {**{robot: f"tok-{robot}-gateways-0123" for robot in SIMULATED},
          "robot_slow": "tok-slow-gateways-0123", "robot_off": "tok-off-gateways-01234"}
WRITE_TOKEN = "write-token-gateways-0123456789"
ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


@pytest.fixture(scope="module")
def two_settings(settings: Settings, kafka_bootstrap: str, registry_url: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    tokens_file = tmp_path_factory.mktemp("gateways") / "tokens.yaml"
    tokens_file.write_text(yaml.safe_dump({robot: hash_token(token) for robot, token in TOKENS.items()}))
    mine = settings.model_copy(update={
        "schema_registry": settings.schema_registry.model_copy(update={"url": registry_url}),
        "topics": settings.topics.model_copy(update={"prefix": f"rpc2gw{uuid.uuid4().hex[:10]}",
                                                     "partitions": 2}),
        "robots": [RobotSettings(id=robot, cameras=["front"]) for robot in TOKENS],
        "auth": settings.auth.model_copy(update={"tokens_file": tokens_file,
                                                 "allow_unauthenticated": False}),
        "rates": settings.rates.model_copy(update={"pose_hz": 2.0, "joints_hz": 2.0, "imu_hz": 2.0,
                                                   "force_torque_hz": 1.0}),
        "gateway": settings.gateway.model_copy(update={"shutdown_timeout_s": 5.0}),  # rpc_lease_s: default
        "api": settings.api.model_copy(update={"port": 0, "write_tokens": [hash_token(WRITE_TOKEN)]}),
    })
    report = create_topics(mine)
    assert report.ok, [r.error for r in report.results if r.error]
    yield mine
    delete_prefix_topics(kafka_bootstrap, mine)


class GatewayProcess:
    """``robostream gateway`` as a subprocess on this module's topics and tokens."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        env = {**os.environ, **TEST_STACK_ENV, "PYTHONPATH": str(ROOT / "src"),
               "ROBOSTREAM_TOPICS__PREFIX": settings.topics.prefix, "ROBOSTREAM_TOPICS__PARTITIONS": "2",
               "ROBOSTREAM_SCHEMA_REGISTRY__URL": settings.schema_registry.url,
               "ROBOSTREAM_AUTH__TOKENS_FILE": str(settings.auth.tokens_file)}
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "robostream", "gateway", "--host", "127.0.0.1",
                                      "--port", str(self.port)], env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, log_path.read_text()[-3000:]
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class Balancer:
    """A TCP load balancer for one robot: a new connection goes to the first gateway port in
    ``order`` that accepts it; :meth:`cut` drops the open connections (the robot reconnects)."""

    def __init__(self, order: list[int]) -> None:
        self.order = order
        self.upstream: int | None = None  # where the current connection went
        self.refuse = False
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def cut(self) -> None:
        self.upstream = None
        for writer in list(self._writers):
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for port in [] if self.refuse else list(self.order):
            with contextlib.suppress(OSError):
                upstream = port, *await asyncio.open_connection("127.0.0.1", port)
                break
        if upstream is None:
            writer.transport.abort()
            return
        port, up_reader, up_writer = upstream
        self.upstream = port
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}
            if self.upstream == port:
                self.upstream = None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


@dataclasses.dataclass
class Cluster:
    settings: Settings
    a: GatewayProcess
    b: Gateway
    loop: LoopThread
    balancers: dict[str, Balancer]
    caller: RpcCaller

    def call(self, robot_id: str, method: str = "ping", timeout_s: float = 10.0) -> RpcReply:
        return self.loop.call(self.caller.call(robot_id, method, {}, timeout_s=timeout_s), timeout_s + 30)

    def call_later(self, robot_id: str, method: str = "ping", timeout_s: float = 10.0
                   ) -> Callable[[], RpcReply]:
        """Start a call now; the returned function waits for its reply."""
        future = asyncio.run_coroutine_threadsafe(
            self.caller.call(robot_id, method, {}, timeout_s=timeout_s), self.loop.loop)
        return lambda: future.result(timeout_s + 30)

    def on_b(self, robot_id: str) -> bool:
        return self.b.rpc.connected(robot_id)

    def on_a(self, robot_id: str) -> bool:
        return self.balancers[robot_id].upstream == self.a.port and not self.on_b(robot_id)


@pytest.fixture(scope="module")
def cluster(two_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Gateway A (subprocess) and B; robot_001/002 prefer A, robot_003/004 prefer B."""
    tmp = tmp_path_factory.mktemp("two-gateways")
    loop = LoopThread("two-gateways")
    b = Gateway(two_settings, host="127.0.0.1", port=0)
    loop.call(b.start())
    a = GatewayProcess(two_settings, tmp / "gateway-a.log")
    balancers = {robot: Balancer([a.port, b.port] if robot in SIMULATED[:2] else [b.port, a.port])
                 for robot in SIMULATED}
    for balancer in balancers.values():
        loop.call(balancer.start())
    options = SimulationOptions.from_settings(
        two_settings, robots=len(SIMULATED), duration_s=3600, media=False, spool_dir=tmp / "spool",
        tokens=TOKENS, progress=False)
    stop = asyncio.Event()
    runs = [asyncio.run_coroutine_threadsafe(run_simulation(dataclasses.replace(
        options, robots=(plan,), gateway_url=balancers[plan.robot_id].url), stop=stop), loop.loop)
        for plan in options.robots]
    caller = RpcCaller(two_settings)
    loop.call(caller.start())
    running = Cluster(two_settings, a, b, loop, balancers, caller)
    try:
        wait_for(lambda: all(running.on_a(r) for r in SIMULATED[:2])
                 and all(running.on_b(r) for r in SIMULATED[2:]), 30, "robots connected to A and B")
        yield running
    finally:
        loop.loop.call_soon_threadsafe(stop.set)
        for run in runs:
            with contextlib.suppress(Exception):
                run.result(30)
        loop.call(caller.close())
        a.close()
        loop.call(b.stop())
        loop.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def requests_read(gateway: Gateway | GatewayProcess) -> float:
    """How many RPC requests ``gateway`` has read from Kafka (``rpc_total{outcome="requested"}``)."""
    if isinstance(gateway, GatewayProcess):
        return scrape(f"http://127.0.0.1:{gateway.port}/metrics").get(
            "robostream_gateway_rpc_total", outcome="requested")
    return gateway.metrics.registry.get_sample_value(
        "robostream_gateway_rpc_total", {"outcome": "requested"}) or 0.0


def held_by(gateways: list[Gateway | GatewayProcess], start: Callable[[], T]) -> T:
    """``start()`` a call for a robot none of ``gateways`` has, and wait until each has read it
    (and holds it, waiting for the robot)."""
    before = [requests_read(g) for g in gateways]
    started = start()
    wait_for(lambda: all(requests_read(g) > n for g, n in zip(gateways, before, strict=True)), 10,
             "every gateway read the call")
    return started


def answers(settings: Settings, correlation_ids: set[str], settle_s: float) -> Counter[str]:
    """How many response records each call got, read from the start of the responses topic
    ``settle_s`` after the last one appeared (a second answer would come at the deadline)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    topic = rpc_responses_topic(settings)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topics.partitions)])
        counts: Counter[str] = Counter()
        quiet_until = time.monotonic() + settle_s
        while time.monotonic() < quiet_until:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            cid = (dict(msg.headers() or []).get("correlation_id") or b"").decode()
            if cid in correlation_ids:
                counts[cid] += 1
                quiet_until = max(quiet_until, time.monotonic() + settle_s)
        return counts
    finally:
        consumer.close()


def test_each_robot_answers_through_the_api_whichever_gateway_holds_it(cluster: Cluster) -> None:
    with RunningApi(cluster.settings) as api:
        replies = {}
        for robot in SIMULATED:
            response = requests.post(f"{api.url}/v1/robots/{robot}/rpc",
                                     json={"method": "ping", "timeout_s": 3},
                                     headers={"Authorization": f"Bearer {WRITE_TOKEN}"}, timeout=30)
            assert response.status_code == 200, response.text
            replies[robot] = response.json()
    for robot, reply in replies.items():
        assert reply["status"] == "ok" and reply["result"]["robot_id"] == robot, reply
    for url in (cluster.b.url, f"http://127.0.0.1:{cluster.a.port}"):  # both share calls through Redis
        assert requests.get(f"{url}/healthz", timeout=10).json()["rpc_registry"] == "up"
    # the gateway without the robot held each call until its deadline too, and did not answer it
    counts = answers(cluster.settings, {r["correlation_id"] for r in replies.values()}, settle_s=3.5)
    assert sorted(counts.values()) == [1, 1, 1, 1], counts


def test_a_robot_nobody_holds_gets_one_timeout(cluster: Cluster) -> None:
    reply = cluster.call("robot_off", timeout_s=2)
    assert reply.status == "timeout" and reply.error is not None
    assert reply.error.message == "robot robot_off was not connected before the deadline"
    assert answers(cluster.settings, {reply.correlation_id}, settle_s=2.0) == {reply.correlation_id: 1}


def test_a_robot_that_moves_to_the_other_gateway_gets_its_calls_there(cluster: Cluster) -> None:
    balancer = cluster.balancers["robot_001"]
    assert cluster.on_a("robot_001") and cluster.call("robot_001").status == "ok"
    balancer.refuse = True
    cluster.loop.call(balancer.cut())
    wait_for(lambda: not cluster.on_a("robot_001") and not cluster.on_b("robot_001"), 10, "robot_001 away")
    waiting = held_by([cluster.a, cluster.b], lambda: cluster.call_later("robot_001", timeout_s=20))
    balancer.order, balancer.refuse = [cluster.b.port, cluster.a.port], False
    wait_for(lambda: cluster.on_b("robot_001"), 30, "robot_001 on gateway B")
    moved = waiting()
    assert moved.status == "ok" and moved.result["robot_id"] == "robot_001", moved
    after = cluster.call("robot_001")
    assert after.status == "ok" and after.result["robot_id"] == "robot_001", after
    assert answers(cluster.settings, {moved.correlation_id, after.correlation_id}, settle_s=2.0) == {
        moved.correlation_id: 1, after.correlation_id: 1}


def test_a_call_delivered_before_the_robot_moved_is_not_sent_again_and_its_answer_counts(
        cluster: Cluster) -> None:
    first = WsRobot(f"ws://127.0.0.1:{cluster.a.port}/v1/stream", TOKENS["robot_slow"], None)
    try:
        waiting = cluster.call_later("robot_slow", "calibrate", timeout_s=15)
        request, _ = first.until("rpc_request", timeout=10)  # gateway A delivered it
    finally:
        first.close()
    moved = WsRobot(f"ws://127.0.0.1:{cluster.b.port}/v1/stream", TOKENS["robot_slow"], None)
    try:
        wait_for(lambda: cluster.on_b("robot_slow"), 10, "robot_slow on gateway B")
        with pytest.raises(TimeoutError):  # B held the call too, but a call is delivered at most once
            moved.until("rpc_request", timeout=1.5)
        moved.send(msgpack.packb({"type": "rpc_response", "correlation_id": request["correlation_id"],
                                  "status": "ok", "result": {"calibrated": True}}))
        receipt, _ = moved.until("rpc_ack", timeout=10)
    finally:
        moved.close()
    assert receipt == {"type": "rpc_ack", "correlation_id": request["correlation_id"]}
    reply = waiting()
    assert reply.status == "ok" and reply.result == {"calibrated": True}, reply
    assert answers(cluster.settings, {reply.correlation_id}, settle_s=2.0) == {reply.correlation_id: 1}


def test_a_gateway_stopped_cancels_the_calls_it_delivered_and_leaves_waiting_ones_to_the_others(
        cluster: Cluster) -> None:
    third = Gateway(cluster.settings, host="127.0.0.1", port=0)
    cluster.loop.call(third.start())
    stopped = False
    try:
        robot = WsRobot(third.ws_url, TOKENS["robot_slow"], None)
        try:
            delivered = cluster.call_later("robot_slow", "calibrate", timeout_s=20)
            robot.until("rpc_request", timeout=10)
            waiting = held_by([cluster.a, cluster.b, third],
                              lambda: cluster.call_later("robot_off", timeout_s=4))
            cluster.loop.call(third.stop())
            stopped = True
        finally:
            robot.close()
        cancelled = delivered()
        assert cancelled.status == "cancelled" and cancelled.error is not None, cancelled
        assert cancelled.error.code == "gateway_shutdown" and cancelled.elapsed_ms < 15_000, cancelled
        timed_out = waiting()  # answered at its deadline by a gateway still running, not cancelled
        assert timed_out.status == "timeout" and timed_out.error is not None, timed_out
        assert timed_out.error.message == "robot robot_off was not connected before the deadline"
        ids = {cancelled.correlation_id, timed_out.correlation_id}
        assert answers(cluster.settings, ids, settle_s=2.0) == dict.fromkeys(ids, 1)
    finally:
        if not stopped:
            cluster.loop.call(third.stop())


def test_a_gateway_killed_with_open_calls_ends_them_once_and_its_robots_move_on(cluster: Cluster) -> None:
    assert cluster.on_a("robot_002")
    slow = WsRobot(f"ws://127.0.0.1:{cluster.a.port}/v1/stream", TOKENS["robot_slow"], None)
    try:
        deadline = time.monotonic() + 4
        unanswered = cluster.call_later("robot_slow", "calibrate", timeout_s=4)
        request, _ = slow.until("rpc_request", timeout=10)  # gateway A sent it; the robot never answers
        assert request["method"] == "calibrate"
        time.sleep(max(0.0, deadline - 0.8 - time.monotonic()))
        cluster.a.kill()  # its lease outlives the deadline: B answers once it lapsed, within the grace
        during = cluster.call_later("robot_002", timeout_s=20)  # robot_002 is reconnecting
        reply = unanswered()
        assert reply.status == "timeout" and reply.error is not None, reply
        assert reply.error.code == "timeout", reply  # not the caller's own no_answer
        assert reply.error.message == "robot robot_slow did not answer before the deadline"
        moved = during()
        assert moved.status == "ok" and moved.result["robot_id"] == "robot_002", moved
        assert cluster.on_b("robot_002")
        after = cluster.call("robot_002")
        assert after.status == "ok" and after.result["robot_id"] == "robot_002", after
        ids = {reply.correlation_id, moved.correlation_id, after.correlation_id}
        assert answers(cluster.settings, ids, settle_s=2.0) == dict.fromkeys(ids, 1)
    finally:
        with contextlib.suppress(Exception):
            slow.close()


def test_without_redis_a_lone_gateway_still_delivers_calls_and_its_healthz_says_so(
        two_settings: Settings, kafka_bootstrap: str) -> None:
    lone = two_settings.model_copy(update={
        "redis": two_settings.redis.model_copy(update={"url": "redis://127.0.0.1:1/0"}),
        "topics": two_settings.topics.model_copy(update={"prefix": f"rpclone{uuid.uuid4().hex[:10]}"})})
    assert create_topics(lone).ok
    loop = LoopThread("lone-gateway")
    gateway = Gateway(lone, host="127.0.0.1", port=0)
    caller = RpcCaller(lone)
    try:
        loop.call(gateway.start())
        loop.call(caller.start())
        robot = WsRobot(gateway.ws_url, TOKENS["robot_slow"], None)
        try:
            waiting = asyncio.run_coroutine_threadsafe(
                caller.call("robot_slow", "calibrate", {}, timeout_s=10), loop.loop)
            request, _ = robot.until("rpc_request", timeout=10)
            robot.send(msgpack.packb({"type": "rpc_response", "correlation_id": request["correlation_id"],
                                      "result": {"calibrated": True}}))
            robot.until("rpc_ack", timeout=10)
        finally:
            robot.close()
        reply = waiting.result(30)
        assert reply.status == "ok" and reply.result == {"calibrated": True}, reply
        health = requests.get(f"{gateway.url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["rpc_registry"].startswith("down: "), health.text
    finally:
        loop.call(caller.close())
        loop.call(gateway.stop())
        loop.close()
        delete_prefix_topics(kafka_bootstrap, lone)
