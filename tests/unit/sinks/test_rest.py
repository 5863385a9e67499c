"""The REST status API answers in Kafka Connect's shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from robostream.config import ConnectorSettings, Settings
from robostream.schemas import InMemorySchemaResolver
from robostream.sinks.connector import Connector
from robostream.sinks.rest import build_app
from robostream.sinks.status import PartitionLag, PauseReason, State
from tests.unit.sinks.fakes import ListSink

pytestmark = pytest.mark.asyncio(loop_scope="session")


def make_connector(name: str, tasks: int = 2) -> Connector:
    settings = Settings()
    config = ConnectorSettings(name=name, kind="mongo", topics=["time_series", "sessions"],
                               tasks=tasks, errors_tolerance="all")
    connector = Connector(config, settings, sink_factory=lambda _s: ListSink([]),
                          resolver_factory=lambda _s: InMemorySchemaResolver(), worker="w:8083")
    connector.tasks = [connector.build_task(i) for i in range(tasks)]  # built, not started
    return connector


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    mongo = make_connector("mongo")
    mongo.tasks[0].status.set(state=State.RUNNING, lag=[PartitionLag("robot.time_series", 0, 90, 100)])
    mongo.tasks[1].status.set(state=State.PAUSED, paused_reason=PauseReason.STORE_UNAVAILABLE,
                              retry_attempt=3, last_error="MongoDB unreachable")
    failed = make_connector("s3", tasks=1)
    failed.tasks[0].status.set(state=State.FAILED, trace="Traceback ...\nTaskFailedError: boom")
    async with TestClient(TestServer(build_app({"mongo": mongo, "s3": failed}, "w:8083"))) as c:
        yield c


async def test_list_and_expand(client: TestClient) -> None:
    assert await (await client.get("/connectors")).json() == ["mongo", "s3"]
    expanded = await (await client.get("/connectors?expand=status&expand=info")).json()
    assert set(expanded["mongo"]) == {"status", "info"}
    assert expanded["s3"]["info"]["config"]["group.id"] == "connect-s3"


async def test_status_shape_with_task_states_traces_and_lag(client: TestClient) -> None:
    status = await (await client.get("/connectors/mongo/status")).json()
    assert status["name"] == "mongo" and status["type"] == "sink"
    assert status["connector"] == {"state": "RUNNING", "worker_id": "w:8083"}
    running, paused = status["tasks"]
    assert running["state"] == "RUNNING" and running["lag"]["total"] == 10
    assert running["lag"]["partitions"][0] == {"topic": "robot.time_series", "partition": 0,
                                               "committed": 90, "end": 100, "lag": 10}
    assert paused["state"] == "PAUSED" and paused["paused_reason"] == "store_unavailable"
    assert paused["retry"]["attempt"] == 3
    s3 = await (await client.get("/connectors/s3/status")).json()
    assert s3["tasks"][0]["state"] == "FAILED" and "boom" in s3["tasks"][0]["trace"]
    task = await (await client.get("/connectors/s3/tasks/0/status")).json()
    assert task["id"] == 0 and task["state"] == "FAILED"


async def test_pause_and_resume(client: TestClient) -> None:
    response = await client.put("/connectors/mongo/pause")
    assert response.status == 202
    status = await (await client.get("/connectors/mongo/status")).json()
    assert status["connector"]["state"] == "PAUSED"
    assert (await client.put("/connectors/mongo/resume")).status == 202
    status = await (await client.get("/connectors/mongo/status")).json()
    assert status["connector"]["state"] == "RUNNING"


async def test_unknown_connector_or_task_is_a_404_in_connect_shape(client: TestClient) -> None:
    response = await client.get("/connectors/nope/status")
    assert response.status == 404
    assert await response.json() == {"error_code": 404, "message": "Connector nope not found"}
    response = await client.get("/connectors/mongo/tasks/7/status")
    assert response.status == 404 and "mongo-7" in (await response.json())["message"]
    assert (await client.put("/connectors/nope/pause")).status == 404


async def test_info_and_tasks(client: TestClient) -> None:
    info = await (await client.get("/connectors/mongo")).json()
    assert info["tasks"] == [{"connector": "mongo", "task": 0}, {"connector": "mongo", "task": 1}]
    assert info["config"]["subscription"] == ["robot.time_series", "robot.sessions"]
    assert info["config"]["errors.deadletterqueue.topic.name"] == "robot.dlq"
    tasks = await (await client.get("/connectors/mongo/tasks")).json()
    assert tasks[1]["id"] == {"connector": "mongo", "task": 1}
    root = await (await client.get("/")).json()
    assert root["worker_id"] == "w:8083"
