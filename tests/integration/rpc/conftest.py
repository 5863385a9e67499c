"""Fixtures of the RPC tests: on the shared test stack, a topic catalogue of this module's own, a
real gateway, a simulated robot (the simulator, through the SDK) connected to it, and the API
with a write token, each on its own event loop thread as separate servers would run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from robostream.config import RobotSettings, Settings
from robostream.gateway import Gateway, hash_token
from robostream.simulator import SimulatedRobot, SimulationOptions, run_simulation
from robostream.topics import create_topics
from tests.conftest import TEST_STACK_ENV
from tests.integration.api.helpers import RunningApi
from tests.integration.conftest import delete_prefix_topics
from tests.integration.gateway.clients import LoopThread

#: robot_001 is simulated; robot_late is driven by the test; robot_off never connects.
TOKENS = {"robot_001": "tok-rpc-0001-abcdef", "robot_late": "tok-rpc-late-abcdef",
          "robot_off": "tok-rpc-off-abcdefg"}
WRITE_TOKEN = "write-token-rpc-0123456789"
READ_TOKEN = "read-token-rpc-0123456789"


@pytest.fixture(scope="module")
def rpc_settings(settings: Settings, kafka_bootstrap: str, registry_url: str) -> Iterator[Settings]:
    """Own topic prefix, robots with tokens, slow telemetry (the robot is here to answer calls),
    an API with a write token apart from its read token."""
    mine = settings.model_copy(update={
        "schema_registry": settings.schema_registry.model_copy(update={"url": registry_url}),
        "topics": settings.topics.model_copy(update={"prefix": f"rpc{uuid.uuid4().hex[:10]}",
                                                     "partitions": 2}),
        "robots": [RobotSettings(id=robot, token_sha256=hash_token(token), cameras=["front"])
                   for robot, token in TOKENS.items()],
        "rates": settings.rates.model_copy(update={"pose_hz": 5.0, "joints_hz": 5.0, "imu_hz": 5.0,
                                                   "force_torque_hz": 2.0}),
        "gateway": settings.gateway.model_copy(update={"shutdown_timeout_s": 5.0}),
        "api": settings.api.model_copy(update={
            "port": 0, "anonymous_read": False, "read_tokens": [hash_token(READ_TOKEN)],
            "write_tokens": [hash_token(WRITE_TOKEN)]}),
    })
    report = create_topics(mine)
    assert report.ok, [r.error for r in report.results if r.error]
    yield mine
    delete_prefix_topics(kafka_bootstrap, mine)


@dataclass
class RunningGateway:
    gateway: Gateway
    thread: LoopThread

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url


@pytest.fixture(scope="module")
def gateway(rpc_settings: Settings) -> Iterator[RunningGateway]:
    thread = LoopThread("rpc-gateway")
    gateway = Gateway(rpc_settings, host="127.0.0.1", port=0)
    thread.call(gateway.start())
    yield RunningGateway(gateway, thread)
    try:
        thread.call(gateway.stop())
    finally:
        thread.close()


@pytest.fixture(scope="module")
def robot(rpc_settings: Settings, gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[SimulatedRobot]:
    """``robostream simulate``'s robot_001 (no media), connected and streaming until the module ends."""
    options = SimulationOptions.from_settings(
        rpc_settings, robots=1, duration_s=3600, gateway_url=gateway.url, media=False,
        spool_dir=tmp_path_factory.mktemp("rpc-spool"), tokens=TOKENS, progress=False)
    thread = LoopThread("rpc-robot")
    stop = asyncio.Event()
    started: asyncio.Future[list[SimulatedRobot]] = thread.loop.create_future()
    running = asyncio.run_coroutine_threadsafe(
        run_simulation(options, stop=stop, on_start=started.set_result), thread.loop)
    robots = asyncio.run_coroutine_threadsafe(asyncio.wait_for(started, 30), thread.loop).result(40)
    try:
        yield robots[0]
    finally:
        thread.loop.call_soon_threadsafe(stop.set)
        running.result(30)
        thread.close()


@pytest.fixture(scope="module")
def api(rpc_settings: Settings, stack: object) -> Iterator[RunningApi]:
    with RunningApi(rpc_settings) as running:
        yield running


@pytest.fixture(scope="module")
def cli_env(rpc_settings: Settings) -> dict[str, str]:
    """The environment of a ``robostream`` subprocess on this module's topics."""
    root = Path(__file__).resolve().parents[3]
    return {**os.environ, **TEST_STACK_ENV, "ROBOSTREAM_TOPICS__PREFIX": rpc_settings.topics.prefix,
            "PYTHONPATH": str(root / "src")}
