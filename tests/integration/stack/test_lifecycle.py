"""`robostream stack up | status | down` as a user runs them, on a second stack of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, stack_env

PORTS = stack_env(21000)  # a second stack beside the session's test stack
REDIS_PORT = int(PORTS["ROBOSTREAM_REDIS__URL"].rsplit(":", 1)[1].split("/")[0])
@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, **PORTS, "ROBOSTREAM_STACK__STATE_DIR": str(tmp_path / "state"),
           "COLUMNS": "200"}
    yield env
    robostream(env, "stack", "down")


def robostream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "robostream", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def ours(state_dir: str) -> list[psutil.Process]:
    """Processes whose command line points into this stack's state folder."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(state_dir in part for part in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_taken_port_fails_with_a_message_naming_it(cli_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", REDIS_PORT))
        squatter.listen()
        result = robostream(cli_env, "stack", "up", "redis")
    assert result.returncode == 1
    assert f"port {REDIS_PORT}" in result.stderr and "already in use" in result.stderr
    assert ours(cli_env["ROBOSTREAM_STACK__STATE_DIR"]) == []


def test_up_down_up_keeps_data_and_down_leaves_nothing_running(cli_env: dict[str, str]) -> None:
    import boto3
    import redis
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from pymongo import MongoClient

    state = cli_env["ROBOSTREAM_STACK__STATE_DIR"]
    up = robostream(cli_env, "stack", "up")
    assert up.returncode == 0, up.stderr
    status = robostream(cli_env, "stack", "status")
    assert status.returncode == 0
    assert status.stdout.count("healthy") == 5
    for expected in ("4.4.0", "SecantusDB", "SeaweedFS 4.48", "Redis 7", "robostream 0.1.0"):
        assert expected in status.stdout

    kafka = PORTS["ROBOSTREAM_KAFKA__BOOTSTRAP"]
    admin = AdminClient({"bootstrap.servers": kafka})
    admin.create_topics([NewTopic("survivor", 1, 1)])["survivor"].result(30)
    producer = Producer({"bootstrap.servers": kafka, "acks": "all"})
    producer.produce("survivor", b"still here")
    assert producer.flush(30) == 0
    MongoClient(PORTS["ROBOSTREAM_MONGO__URI"]).db.c.insert_one({"_id": "survivor"})
    s3 = boto3.client("s3", endpoint_url=PORTS["ROBOSTREAM_S3__ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id="robostream", aws_secret_access_key="robostream-secret")
    s3.put_object(Bucket="robostream", Key="survivor.txt", Body=b"still here")
    redis.Redis.from_url(PORTS["ROBOSTREAM_REDIS__URL"]).set("survivor", "still here")

    down = robostream(cli_env, "stack", "down")
    assert down.returncode == 0
    assert ours(state) == [], "stack down left processes running"

    assert robostream(cli_env, "stack", "up").returncode == 0
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "g", "auto.offset.reset": "earliest"})
    consumer.subscribe(["survivor"])
    msg = consumer.poll(30)
    consumer.close()
    assert msg is not None and msg.value() == b"still here"
    assert MongoClient(PORTS["ROBOSTREAM_MONGO__URI"]).db.c.find_one({"_id": "survivor"})
    assert s3.get_object(Bucket="robostream", Key="survivor.txt")["Body"].read() == b"still here"
    assert redis.Redis.from_url(PORTS["ROBOSTREAM_REDIS__URL"]).get("survivor") == b"still here"
