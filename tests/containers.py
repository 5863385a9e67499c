"""The integration stack on containers: ``ROBOSTREAM_TEST_STACK=containers``.

``local`` (the default) runs the tests against the embedded stack (tests/conftest.py's ``Stack``);
``containers`` starts Kafka, MongoDB, MinIO and Redis with testcontainers, from the images
docker-compose.yml names, and robostream's schema registry in this process against the
container Kafka. :func:`start_containers` returns their ``ROBOSTREAM_*`` environment; where no
Docker engine answers it skips the tests that need it, saying why.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"

MODE_VAR = "ROBOSTREAM_TEST_STACK"
Mode = Literal["local", "containers"]
MODES: tuple[Mode, ...] = ("local", "containers")

#: The compose services whose images the containers use.
SERVERS = ("kafka", "mongo", "minio", "redis")
START_TIMEOUT_S = 120


def stack_mode() -> Mode:
    """``ROBOSTREAM_TEST_STACK``: ``local`` (default) or ``containers``; anything else is an error."""
    value = os.environ.get(MODE_VAR, "local").strip().lower() or "local"
    for mode in MODES:
        if value == mode:
            return mode
    raise pytest.UsageError(
        f"{MODE_VAR}={os.environ.get(MODE_VAR)!r}: expected 'local' (the embedded stack, the default) "
        "or 'containers' (Kafka, MongoDB, MinIO and Redis in Docker via testcontainers)"
    )


def docker_unavailable() -> str | None:
    """Why no Docker engine can run the containers, or ``None`` if one answers."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (f"{MODE_VAR}=containers needs a Docker engine and none answers at {host} "
                f"({first_line}); run with {MODE_VAR}=local for the embedded stack")
    return None


def compose_images(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """``{server: image}`` of Kafka, MongoDB, MinIO and Redis as docker-compose.yml pins them."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return {name: services[name]["image"] for name in SERVERS}


class ContainerStack:
    """Running containers (and the registry); ``env`` points robostream at them."""

    def __init__(self, env: dict[str, str], resources: ExitStack) -> None:
        self.env = env
        self._resources = resources

    def stop(self) -> None:
        """Stop the registry and remove the containers."""
        self._resources.close()


def start_containers(config_file: Path = ROOT / "config.yaml") -> ContainerStack:
    """Start the four servers and the schema registry; skip (pytest) without a Docker engine."""
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(reason)
    from robostream.config import load_settings

    base = load_settings(config_file)
    images = compose_images()
    with ExitStack() as resources:
        access_key = base.s3.access_key
        secret_key = base.s3.secret_key.get_secret_value()
        env = {
            "ROBOSTREAM_KAFKA__BOOTSTRAP": _kafka(resources, images["kafka"]),
            "ROBOSTREAM_MONGO__URI": _mongo(resources, images["mongo"]),
            "ROBOSTREAM_S3__ENDPOINT": _minio(resources, images["minio"], access_key, secret_key,
                                              base.s3.bucket, base.s3.region),
            "ROBOSTREAM_S3__ACCESS_KEY": access_key,
            "ROBOSTREAM_S3__SECRET_KEY": secret_key,
            "ROBOSTREAM_S3__BUCKET": base.s3.bucket,
            "ROBOSTREAM_REDIS__URL": _redis(resources, images["redis"]),
        }
        settings = base.model_copy(update={
            "kafka": base.kafka.model_copy(update={"bootstrap": env["ROBOSTREAM_KAFKA__BOOTSTRAP"]})})
        env["ROBOSTREAM_SCHEMA_REGISTRY__URL"] = _registry(resources, settings)
        return ContainerStack(env, resources.pop_all())
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow errors


# -- the servers -------------------------------------------------------------------------------

_KAFKA_START = "/tmp/robostream-kafka-start.sh"


def _kafka(resources: ExitStack, image: str) -> str:
    """Apache Kafka, one KRaft node; advertised on the host port Docker mapped (known only after
    the container started, so the broker waits for a start script written then)."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = (
        DockerContainer(image)
        .with_exposed_ports(9092)
        .with_envs(
            CLUSTER_ID="4L6g3nShT-eMCtK--X86sw", KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,BROKER://:9094,CONTROLLER://:9093",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_INTER_BROKER_LISTENER_NAME="BROKER", KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1", KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1", KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false", KAFKA_MESSAGE_MAX_BYTES="16777216",
        )
        .with_command(["sh", "-c", f"while [ ! -f {_KAFKA_START} ]; do sleep 0.1; done; . {_KAFKA_START}"])
    )
    container.start()
    resources.callback(container.stop)
    bootstrap = f"{container.get_container_host_ip()}:{container.get_exposed_port(9092)}"
    script = (f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{bootstrap},BROKER://$(hostname -i | "
              "cut -d' ' -f1):9094\nexec /etc/kafka/docker/run\n")
    container.copy_into_container(script.encode(), _KAFKA_START)
    LogMessageWaitStrategy(re.compile(r"Kafka Server started")).with_startup_timeout(
        START_TIMEOUT_S).wait_until_ready(container)
    return bootstrap


def _mongo(resources: ExitStack, image: str) -> str:
    """MongoDB as a one-member replica set (change streams), reached directly."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = (DockerContainer(image).with_exposed_ports(27017)
                 .with_command(["mongod", "--replSet", "rs0", "--bind_ip_all"]))
    container.start()
    resources.callback(container.stop)
    LogMessageWaitStrategy(re.compile(r"Waiting for connections")).with_startup_timeout(
        START_TIMEOUT_S).wait_until_ready(container)
    uri = f"mongodb://{container.get_container_host_ip()}:{container.get_exposed_port(27017)}/?directConnection=true"
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        members = [{"_id": 0, "host": "localhost:27017"}]
        client.admin.command("replSetInitiate", {"_id": "rs0", "members": members})
        deadline = time.monotonic() + START_TIMEOUT_S
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"MongoDB at {uri} did not become primary")
            time.sleep(0.5)
    except PyMongoError as exc:
        raise RuntimeError(f"MongoDB replica set at {uri}: {exc}") from exc
    finally:
        client.close()
    return uri


def _minio(resources: ExitStack, image: str, access_key: str, secret_key: str, bucket: str,
           region: str) -> str:
    """MinIO with config.yaml's credentials and bucket."""
    import boto3
    from testcontainers.community.minio import MinioContainer

    container = (MinioContainer(image, access_key=access_key, secret_key=secret_key)
                 .with_env("MINIO_ROOT_USER", access_key).with_env("MINIO_ROOT_PASSWORD", secret_key))
    container.start()
    resources.callback(container.stop)
    endpoint = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9000)}"
    boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
                 aws_secret_access_key=secret_key).create_bucket(Bucket=bucket)
    return endpoint


def _redis(resources: ExitStack, image: str) -> str:
    from testcontainers.community.redis import RedisContainer

    container = RedisContainer(image)
    container.start()
    resources.callback(container.stop)
    return f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


def _registry(resources: ExitStack, settings: Any) -> str:
    """robostream's schema registry on a thread of this process, against the container Kafka."""
    from robostream.schemas.registry import SchemaRegistryServer

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="schema-registry", daemon=True)
    thread.start()
    server = SchemaRegistryServer(settings)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    asyncio.run_coroutine_threadsafe(server.start(), loop).result(START_TIMEOUT_S)
    resources.callback(stop)
    return server.url
