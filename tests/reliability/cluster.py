"""A three-broker Kafka cluster for broker faults (ports from 23000), started as a user would:
``stack.kafka_brokers: 3`` (``robostream stack up --kafka-brokers 3``), then ``topics create``.

Only what the faults need runs on it: the three Kafka nodes, the schema registry and the gateway
(as real ``robostream`` subprocesses); the faults that kill a processor worker or a sink task also
start MongoDB (SecantusDB), Redis, the sink worker and the processors on it (``SERVICES_ON_CLUSTER``).
Every process started here is stopped when the module's tests end, passed or failed.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections import Counter
from typing import Any

from confluent_kafka.admin import AdminClient

from robostream.config import Settings, load_settings
from robostream.stack.servers import (
    GatewayService,
    MongoServer,
    ProcessorService,
    RedisServer,
    SchemaRegistryServer,
    Server,
    SinkService,
    kafka_servers,
)
from robostream.topics import create_topics, topic_for
from tests.conftest import PORT_OFFSET, ROOT, environment
from tests.reliability.stack import CONNECTORS, ReliabilityStack, write_tokens_file

BASE = 23000
PORT = BASE + PORT_OFFSET
STATE_DIR = ROOT / ".robostream" / f"cluster-stack-{PORT}"
NODES = ("kafka-1", "kafka-2", "kafka-3")


def cluster_env() -> dict[str, str]:
    """ROBOSTREAM_* variables of the cluster stack and of the services it starts."""
    return {
        "ROBOSTREAM_CONFIG": str(ROOT / "config.yaml"),
        "ROBOSTREAM_KAFKA__BOOTSTRAP": f"127.0.0.1:{PORT + 92}",  # node i: +2(i-1), listed by the settings
        "ROBOSTREAM_STACK__KAFKA_CONTROLLER_PORT": str(PORT + 93),
        "ROBOSTREAM_STACK__KAFKA_BROKERS": "3",
        "ROBOSTREAM_STACK__KAFKA_HEAP": "512m",
        "ROBOSTREAM_STACK__STATE_DIR": str(STATE_DIR),
        "ROBOSTREAM_STACK__STOP_TIMEOUT_S": "15",
        "ROBOSTREAM_SCHEMA_REGISTRY__URL": f"http://127.0.0.1:{PORT + 81}",
        "ROBOSTREAM_GATEWAY__PORT": str(PORT + 180),
        # S3 is never written to here (no image, no blob large enough for claim-check): a port
        # nothing listens on, so a mistake shows instead of touching a developer's stack; MongoDB
        # and Redis run only for the faults that need the sinks (SERVICES_ON_CLUSTER)
        "ROBOSTREAM_S3__ENDPOINT": f"http://127.0.0.1:{PORT + 333}",
        "ROBOSTREAM_MONGO__URI": f"mongodb://127.0.0.1:{PORT + 17}/?directConnection=true&retryWrites=false",
        "ROBOSTREAM_REDIS__URL": f"redis://127.0.0.1:{PORT + 379}/0",
        "ROBOSTREAM_REDIS__LATEST_WINDOW": "10000000",  # the ring holds every point: countable
        "ROBOSTREAM_SINKS__PORT": str(PORT + 183),
        "ROBOSTREAM_CONNECTORS": json.dumps([c for c in CONNECTORS if c["kind"] != "s3"]),
        "ROBOSTREAM_PROCESSORS__SESSION_TIMEOUT_S": "6",
        "ROBOSTREAM_PROCESSORS__BUNDLES": "false",
        "ROBOSTREAM_PROCESSORS__BUCKETED_OUTPUT": "true",  # the mongo connector lands it
        "ROBOSTREAM_TOPICS__PARTITIONS": "3",
        "ROBOSTREAM_AUTH__TOKENS_FILE": str(STATE_DIR / "tokens.yaml"),
        "ROBOSTREAM_AUTH__ALLOW_UNAUTHENTICATED": "false",
        "ROBOSTREAM_BATCHING__SPOOL_DIR": str(STATE_DIR / "spool"),
    }


ENV = cluster_env()
#: A second gateway that gives up on a record after 6 s (the first keeps the default 120 s): a
#: robot sees Kafka's refusal within a test's time, without restarting the first gateway.
IMPATIENT_ENV = {"ROBOSTREAM_GATEWAY__PORT": str(PORT + 190), "ROBOSTREAM_GATEWAY__DELIVERY_TIMEOUT_S": "6",
                 "ROBOSTREAM_BATCHING__SPOOL_DIR": str(STATE_DIR / "spool-impatient")}


def cluster_settings(**extra: str) -> Settings:
    with environment({**ENV, **extra}):
        return load_settings()


class Registry(SchemaRegistryServer):
    def env(self) -> dict[str, str]:
        return {**super().env(), **ENV}


class Gateway(GatewayService):
    after = ("kafka", "schema-registry")  # no S3 here: claim-check is not on these tests' path

    def env(self) -> dict[str, str]:
        return {**super().env(), **ENV}


class ImpatientGateway(Gateway):
    name = "gateway-impatient"

    def __init__(self, settings: Settings) -> None:
        super().__init__(cluster_settings(**IMPATIENT_ENV))

    def env(self) -> dict[str, str]:
        return {**super().env(), **IMPATIENT_ENV}


class Sinks(SinkService):
    after = ("kafka", "mongo", "redis", "schema-registry")  # no S3 connector on the cluster

    def env(self) -> dict[str, str]:
        return {**super().env(), **ENV}


class Processors(ProcessorService):
    def env(self) -> dict[str, str]:
        return {**super().env(), **ENV}


SERVICES = ("schema-registry", "gateway", "gateway-impatient")
#: Started by the faults that kill a processor worker or a sink task, not by :func:`start`.
SERVICES_ON_CLUSTER = ("mongo", "redis", "sinks", "processors")


def servers(settings: Settings) -> list[Server]:
    return [*kafka_servers(settings), Registry(settings), Gateway(settings), ImpatientGateway(settings),
            MongoServer(settings), RedisServer(settings), Sinks(settings), Processors(settings)]


class ClusterStack(ReliabilityStack):
    """The cluster plus what broker faults need: who leads, who is in sync."""

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.settings.kafka.bootstrap, "log_level": 0})

    def partitions(self, data_type: str) -> dict[int, Any]:
        topic = topic_for(data_type, self.settings)
        return dict(self.admin().list_topics(topic, timeout=10).topics[topic].partitions)

    def leaders(self, data_type: str) -> Counter[int]:
        """Partitions of the data type's topic each broker (node id) leads."""
        return Counter(p.leader for p in self.partitions(data_type).values())

    def wait_in_sync(self, data_type: str, timeout_s: float = 60) -> float:
        """Seconds until every partition of the topic has all 3 replicas in sync again."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if all(len(p.isrs) == 3 and p.leader >= 0 for p in self.partitions(data_type).values()):
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"{data_type}: replicas not back in sync after {timeout_s:.0f} s: "
                             f"{[(p.id, p.leader, p.isrs) for p in self.partitions(data_type).values()]}")

    def kill_all(self) -> None:
        """``kill -9`` of everything running: the end of a session (the state folder is reused)."""
        for server in self.servers:
            if self.record(server.name) is not None:
                self.kill9(server.name)


def new_stack() -> ClusterStack:
    """The cluster's stack, not started. Its settings come from ``os.environ``, which
    :func:`cluster_settings` changes for a moment: call this on the main thread, not beside tests."""
    settings = cluster_settings()
    return ClusterStack(settings, servers(settings))


def start(stack: ClusterStack) -> ClusterStack:
    """The cluster, its topics, the registry and both gateways; leftovers of an interrupted run
    are stopped first. The state folder is reused (formatting 3 nodes costs seconds); one that
    does not start is emptied and tried once more. Safe on a thread: reads no environment."""
    settings = stack.settings
    stack.down()
    for spool in STATE_DIR.glob("spool*"):  # robots of an interrupted run must not resend into this one
        shutil.rmtree(spool)
    write_tokens_file(STATE_DIR / "tokens.yaml")
    for attempt in (1, 2):
        try:
            stack.up(NODES)
            report = create_topics(settings)
            assert report.ok, [r.error for r in report.results if r.error]
            stack.up(SERVICES)
            return stack
        except BaseException:
            stack.kill_all()
            if attempt == 2:
                raise
            shutil.rmtree(STATE_DIR, ignore_errors=True)
            write_tokens_file(STATE_DIR / "tokens.yaml")
    raise AssertionError("unreachable")


def session_id() -> str:
    return f"s-cluster-{uuid.uuid4().hex[:8]}"
