"""The reliability suite's own stack (ports from 17000), apart from the shared test stack.

Its faults stop servers, so it never touches the 19xxx stack other tests run on. Kafka, SecantusDB,
SeaweedFS, Redis and the schema registry run as the stack runs them; the gateway, the sink worker
and the stream processors run as real ``robostream`` subprocesses the tests kill with SIGKILL and
start again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from robostream.config import Settings, load_settings
from robostream.gateway import hash_token
from robostream.stack import Stack
from robostream.stack.process import wait_until
from robostream.stack.servers import (
    ApiService,
    GatewayService,
    KafkaServer,
    MongoServer,
    ProcessorService,
    RedisServer,
    S3Server,
    SchemaRegistryServer,
    Server,
    SinkService,
)
from tests.conftest import PORT_OFFSET, ROOT, environment, stack_env

BASE = 17000
PORT = BASE + PORT_OFFSET
STATE_DIR = ROOT / ".robostream" / f"reliability-stack-{PORT}"
ROBOTS = ("robot_001", "robot_002", "robot_003")
#: Robot tokens (development values; the stack stores only their SHA-256).
TOKENS = {robot: f"tok-{robot}-{'x' * 24}" for robot in ROBOTS}
READ_TOKEN = "read-token-for-dashboards-0123456789"
SERVICES = ("gateway", "sinks", "processors")

CONNECTORS: list[dict[str, Any]] = [
    # telemetry lands from the processors' output, so a killed processor is on the path
    {"name": "mongo", "kind": "mongo", "topics": ["sessions", "derived.telemetry_bucketed"],
     "batch_size": 1000, "flush_interval_ms": 300, "errors_tolerance": "all", "dlq_topic": "dlq",
     "errors_retry_delay_max_ms": 2000},
    {"name": "s3", "kind": "s3", "topics": ["images"], "batch_size": 200, "flush_interval_ms": 300,
     "errors_tolerance": "all", "dlq_topic": "dlq", "errors_retry_delay_max_ms": 2000},
    {"name": "redis", "kind": "redis", "topics": ["time_series"], "batch_size": 1000,
     "flush_interval_ms": 200, "errors_tolerance": "all", "dlq_topic": "dlq",
     "errors_retry_delay_max_ms": 2000},
]


def reliability_env() -> dict[str, str]:
    """ROBOSTREAM_* variables of the reliability stack and of the services it starts."""
    env = stack_env(BASE)
    env.update({
        # stack_env puts SeaweedFS's internal ports at base+340: move them off a dev stack's 18340
        "ROBOSTREAM_STACK__SEAWEED_PORT_BASE": str(PORT + 440),
        "ROBOSTREAM_STACK__STATE_DIR": str(STATE_DIR),
        "ROBOSTREAM_STACK__KAFKA_HEAP": "768m",
        "ROBOSTREAM_STACK__STOP_TIMEOUT_S": "15",
        "ROBOSTREAM_GATEWAY__PORT": str(PORT + 180),
        "ROBOSTREAM_GATEWAY__IDLE_TIMEOUT_S": "10",
        "ROBOSTREAM_SINKS__PORT": str(PORT + 183),
        "ROBOSTREAM_API__PORT": str(PORT + 100),
        "ROBOSTREAM_API__READ_TOKENS": json.dumps([hash_token(READ_TOKEN)]),
        "ROBOSTREAM_API__ANONYMOUS_READ": "false",
        "ROBOSTREAM_TOPICS__PARTITIONS": "3",
        "ROBOSTREAM_AUTH__TOKENS_FILE": str(STATE_DIR / "tokens.yaml"),
        "ROBOSTREAM_AUTH__ALLOW_UNAUTHENTICATED": "false",
        "ROBOSTREAM_REDIS__LATEST_WINDOW": "10000000",  # the ring holds every point: countable
        "ROBOSTREAM_CONNECTORS": json.dumps(CONNECTORS),
        "ROBOSTREAM_PROCESSORS__SESSION_TIMEOUT_S": "6",
        "ROBOSTREAM_PROCESSORS__BUNDLES": "false",
        "ROBOSTREAM_PROCESSORS__BUCKETED_OUTPUT": "true",  # the mongo connector lands it
        "ROBOSTREAM_BATCHING__SPOOL_DIR": str(STATE_DIR / "spool"),
    })
    return env


ENV = reliability_env()




def reliability_settings(**extra: str) -> Settings:
    """Settings of the reliability stack (``extra``: more ROBOSTREAM_* overrides)."""
    with environment({**ENV, **extra}):
        return load_settings()


class _OwnEnv:
    """Mixin: a service child gets the reliability stack's variables, whatever the parent has."""

    def env(self) -> dict[str, str]:
        return {**super().env(), **ENV}  # type: ignore[misc]


class Gateway(_OwnEnv, GatewayService):
    pass


class Sinks(_OwnEnv, SinkService):
    pass


class Processors(_OwnEnv, ProcessorService):
    pass


class Registry(_OwnEnv, SchemaRegistryServer):
    pass


class Api(_OwnEnv, ApiService):
    pass


def servers(settings: Settings) -> list[Server]:
    return [KafkaServer(settings), MongoServer(settings), S3Server(settings), RedisServer(settings),
            Registry(settings), Gateway(settings), Sinks(settings), Processors(settings),
            Api(settings)]


class ReliabilityStack(Stack):
    """The stack plus what the faults need: SIGKILL a service, stop and start one server."""

    def pid(self, name: str) -> int:
        record = self.record(name)
        assert record is not None, f"{name} is not running; log: {self.log_path(name)}"
        return record.pid

    def kill9(self, name: str) -> None:
        """``kill -9`` the service's process group (its children too) and wait until it is gone."""
        record = self.record(name)
        assert record is not None, f"{name} is not running"
        proc = record.process()
        procs = [proc, *proc.children(recursive=True)] if proc is not None else []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(record.pid, 0)
        self.down([name])  # forgets the PID file (the process is already gone)

    def restart(self, name: str) -> float:
        """Start ``name`` again and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        self.up([name])
        return time.monotonic() - started

    def outage(self, name: str, seconds: float) -> float:
        """Stop ``name`` for ``seconds`` (SIGTERM, as an operator would), start it; total seconds down."""
        started = time.monotonic()
        self.down([name])
        assert not self.server(name).healthy(), f"{name} still answers after stop"
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        self.up([name])
        return time.monotonic() - started


def write_tokens_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{robot}: {hash_token(token)}\n" for robot, token in TOKENS.items()))


def start(settings: Settings) -> ReliabilityStack:
    """Infrastructure, topics, then the three services; reuses what already runs."""
    from robostream.topics import create_topics

    write_tokens_file(STATE_DIR / "tokens.yaml")
    stack = ReliabilityStack(settings, servers(settings))
    stack.up()
    create_topics(settings)
    stack.up(SERVICES)
    ok = wait_until(lambda: all(stack.record(name) for name in SERVICES), 30)
    assert ok, "services did not stay up"
    return stack
