"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema, kept as test data
in tests/data/compose-spec.json: schema/compose-spec.json of github.com/compose-spec/compose-spec,
last changed by commit a08f8d51631b7127ddac3d2c65537db429d0f1d0 (2025-10-28), taken unmodified
from the repository at 170098ba07d9f53c383a41bfd4c5166b0a4529a6.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from robostream.cli.main import app
from robostream.config import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT / "tests" / "data" / "compose-spec.json"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

#: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} (Compose interpolation).
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """``value`` with Compose's variable interpolation applied (defaults when ``env`` lacks them)."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        if name in env and (env[name] or not op.startswith(":")):
            return env[name]
        if op.endswith("?"):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg

    return _VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """The compose file as Compose runs it with no variables set (every default applied)."""
    resolved: dict[str, Any] = interpolate(raw)
    return resolved


@pytest.fixture
def defaults() -> Settings:
    """config.yaml's values, no environment on top."""
    return load_settings(ROOT / "config.yaml")


def robostream_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run our image."""
    return {name: svc for name, svc in compose["services"].items() if "robostream" in svc["image"]}


def robostream_env(compose: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(service, variable, value)`` of every ROBOSTREAM_* variable a service sets."""
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if key.startswith(ENV_PREFIX):
                yield name, key, str(value)


def published(compose: dict[str, Any], service: str) -> dict[int, int]:
    """``{container port: host port}`` of a service's ``HOST_IP:HOST:CONTAINER`` ports."""
    out = {}
    for entry in compose["services"][service].get("ports", []):
        *_, host, container = str(entry).split(":")
        out[int(container)] = int(host)
    return out


# -- the Compose Specification ---------------------------------------------------------------------

def test_compose_file_is_valid_against_the_compose_specification(
    raw: dict[str, Any], compose: dict[str, Any],
) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["title"] == "Compose Specification"
    validator = jsonschema.Draft7Validator(schema)
    for document in (raw, compose):  # as written, and after interpolation
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(document)]
        assert not errors, "\n".join(errors)


def test_schema_rejects_what_compose_rejects(raw: dict[str, Any]) -> None:
    """The validator above is live: a misspelt service key fails it."""
    schema = json.loads(SCHEMA_FILE.read_text())
    broken = json.loads(json.dumps(raw))
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError, match="helthcheck"):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_every_service_has_its_dependencies_and_images_are_pinned(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {"kafka", "kafka-1", "kafka-2", "kafka-3", "mongo", "minio", "minio-bucket", "redis",
                "topics", "schema-registry", "gateway", "processors", "sinks", "sinks-live", "api"}
    assert expected <= services.keys()
    for name, svc in services.items():
        for dependency in svc.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        image = svc["image"]
        assert "robostream" in image or (":" in image and not image.endswith(":latest")), image
    long_running = set(services) - {"topics", "minio-bucket"}
    missing = sorted(n for n in long_running if "healthcheck" not in services[n])
    assert not missing, f"no health check: {missing}"


def test_single_node_by_default_and_a_three_broker_cluster_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "profiles" not in services["kafka"]
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    brokers = [services[f"kafka-{i}"] for i in (1, 2, 3)]
    voters = {b["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert [b["environment"]["KAFKA_NODE_ID"] for b in brokers] == ["1", "2", "3"]
    assert len({b["environment"]["KAFKA_BROKER_RACK"] for b in brokers}) == 3
    for broker in brokers:
        assert broker["profiles"] == ["cluster"]
        assert broker["environment"]["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert broker["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert broker["image"] == services["kafka"]["image"]


#: Broker settings that name hosts, ports or paths: they differ between containers and loopback.
WHERE = {"listeners", "advertised.listeners", "log.dirs", "controller.quorum.voters"}


def broker_settings(env: dict[str, Any]) -> dict[str, str]:
    """A Kafka container's ``KAFKA_*`` variables as ``server.properties`` keys (as the image maps them)."""
    return {name[len("KAFKA_"):].lower().replace("_", "."): str(value)
            for name, value in env.items() if name.startswith("KAFKA_")}


@pytest.mark.parametrize("node", [1, 2, 3])
def test_the_cluster_profile_runs_the_brokers_the_local_cluster_is_tested_with(
    compose: dict[str, Any], node: int,
) -> None:
    """kafka-N of the ``cluster`` profile has exactly the settings of node N of
    ``robostream stack up --kafka-brokers 3`` (the cluster tests/reliability kills brokers of)."""
    from robostream.config import StackSettings
    from robostream.stack.servers import CLUSTER_BROKER_PROPERTIES, kafka_servers

    local = kafka_servers(Settings(stack=StackSettings(kafka_brokers=3)))[node - 1].properties()
    container = broker_settings(compose["services"][f"kafka-{node}"]["environment"])
    assert {k: v for k, v in container.items() if k not in WHERE} == {
        k: v for k, v in local.items() if k not in WHERE}
    assert CLUSTER_BROKER_PROPERTIES.items() <= container.items()
    voter_ids = [v.split("@")[0] for v in container["controller.quorum.voters"].split(",")]
    assert voter_ids == [v.split("@")[0] for v in local["controller.quorum.voters"].split(",")]
    assert container["min.insync.replicas"] == "2" and container["default.replication.factor"] == "3"


def test_mongo_runs_as_a_replica_set_and_the_bucket_is_created(
    compose: dict[str, Any], defaults: Settings,
) -> None:
    services = compose["services"]
    assert "--replSet" in services["mongo"]["command"]
    assert "rs.initiate" in " ".join(services["mongo"]["healthcheck"]["test"])
    for name, svc in robostream_services(compose).items():
        uri = svc["environment"]["ROBOSTREAM_MONGO__URI"]
        assert "replicaSet=rs0" in uri, name
    bucket_job = services["minio-bucket"]
    assert bucket_job["environment"]["S3_BUCKET"] == defaults.s3.bucket
    assert "mc mb --ignore-existing" in " ".join(bucket_job["command"])
    for name, svc in robostream_services(compose).items():
        if name not in ("topics", "schema-registry"):
            assert svc["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"


def test_presigned_urls_are_signed_for_the_s3_port_the_host_reaches(compose: dict[str, Any]) -> None:
    """Services reach MinIO as minio:9000; browsers on the host only through its published port."""
    published = {p.rsplit(":", 1)[-1]: p for p in compose["services"]["minio"]["ports"]}
    host_port = published["9000"].split(":")[-2]
    for name, svc in robostream_services(compose).items():
        env = svc["environment"]
        internal = urlsplit(env["ROBOSTREAM_S3__ENDPOINT"])
        public = urlsplit(env["ROBOSTREAM_S3__PUBLIC_ENDPOINT"])
        assert (internal.hostname, internal.port) == ("minio", 9000), name
        assert public.hostname in ("127.0.0.1", "localhost") and str(public.port) == host_port, name


def test_the_public_servers_cut_slow_clients_as_config_yaml_does(compose: dict[str, Any],
                                                                  defaults: Settings) -> None:
    """The gateway and the API face robots and browsers: their read deadlines are set (slowloris)."""
    for service, section in (("gateway", defaults.gateway), ("api", defaults.api)):
        env = compose["services"][service]["environment"]
        prefix = f"ROBOSTREAM_{service.upper()}__"
        assert float(env[f"{prefix}HEADER_TIMEOUT_S"]) == section.header_timeout_s
        assert float(env[f"{prefix}BODY_TIMEOUT_S"]) == section.body_timeout_s
        assert section.header_timeout_s < section.keepalive_timeout_s


# -- configuration through ROBOSTREAM_* variables ----------------------------------------------

def test_every_robostream_variable_names_a_real_config_key(compose: dict[str, Any]) -> None:
    seen = 0
    for service, variable, _value in robostream_env(compose):
        section, sep, key = variable[len(ENV_PREFIX):].lower().partition("__")
        assert sep and "__" not in key, f"{service}: {variable} is not ROBOSTREAM_<SECTION>__<KEY>"
        assert section in Settings.model_fields, f"{service}: {variable}: no config section {section!r}"
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), variable
        assert key in model.model_fields, f"{service}: {variable}: no key {key!r} in {section}"
        seen += 1
    assert seen > 50


@pytest.mark.parametrize("service", ["topics", "schema-registry", "gateway", "processors", "sinks",
                                     "sinks-live", "api", "foxglove"])
def test_each_service_environment_loads_into_valid_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image's config.yaml with the service's variables on top is a valid configuration."""
    for _name, variable, value in robostream_env({"services": {service: compose["services"][service]}}):
        monkeypatch.setenv(variable, value)
    loaded = load_settings(ROOT / "config.yaml")
    assert loaded.kafka.bootstrap == "kafka:9092"
    assert loaded.mongo.uri == "mongodb://mongo:27017/?replicaSet=rs0"
    assert loaded.s3.endpoint == "http://minio:9000"
    assert loaded.redis.url == "redis://redis:6379/0"
    assert loaded.schema_registry.url == "http://schema-registry:8081"


def test_cluster_variables_give_a_replicated_catalogue(
    raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the header's cluster command sets: three bootstrap brokers, replication factor 3."""
    from robostream.topics import catalogue

    cluster = {"ROBOSTREAM_KAFKA__BOOTSTRAP": "kafka-1:9092,kafka-2:9092,kafka-3:9092",
               "ROBOSTREAM_KAFKA__REPLICATION_FACTOR": "3"}
    env = interpolate(raw["services"]["gateway"]["environment"], cluster)
    for variable, value in env.items():
        if variable.startswith(ENV_PREFIX):
            monkeypatch.setenv(variable, str(value))
    loaded = load_settings(ROOT / "config.yaml")
    specs = catalogue(loaded)
    assert {s.replication_factor for s in specs} == {3}
    assert {s.configs["min.insync.replicas"] for s in specs if "min.insync.replicas" in s.configs} == {"2"}


def test_compose_stays_in_step_with_config_yaml(compose: dict[str, Any], defaults: Settings) -> None:
    """Host ports are config.yaml's default ports (a host `robostream` reaches the compose
    stack unchanged); topics, bucket, registry topic and app id are config.yaml's defaults."""
    assert published(compose, "kafka") == {9094: defaults.kafka.port}
    assert published(compose, "mongo") == {27017: defaults.mongo.port}
    assert published(compose, "minio")[9000] == defaults.s3.port
    assert published(compose, "redis") == {6379: defaults.redis.port}
    assert published(compose, "schema-registry") == {8081: defaults.schema_registry.port}
    assert published(compose, "gateway") == {defaults.gateway.port: defaults.gateway.port}
    assert published(compose, "api") == {defaults.api.port: defaults.api.port}
    assert published(compose, "foxglove") == {defaults.foxglove.port: defaults.foxglove.port}
    kafka_env = compose["services"]["kafka"]["environment"]
    assert f"HOST://127.0.0.1:{defaults.kafka.port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{defaults.stack.kafka_version}"
    services = robostream_services(compose)
    for name, svc in services.items():
        env = svc["environment"]
        assert env["ROBOSTREAM_TOPICS__PREFIX"] == defaults.topics.prefix, name
        assert env["ROBOSTREAM_TOPICS__PARTITIONS"] == str(defaults.topics.partitions), name
        assert env["ROBOSTREAM_S3__BUCKET"] == defaults.s3.bucket, name
        assert env["ROBOSTREAM_S3__ACCESS_KEY"] == defaults.s3.access_key, name
        assert env["ROBOSTREAM_SCHEMA_REGISTRY__TOPIC"] == defaults.schema_registry.topic, name
        assert env["ROBOSTREAM_KAFKA__REPLICATION_FACTOR"] == str(defaults.kafka.replication_factor)
    minio = compose["services"]["minio"]["environment"]
    assert minio["MINIO_ROOT_USER"] == defaults.s3.access_key
    assert minio["MINIO_ROOT_PASSWORD"] == defaults.s3.secret_key.get_secret_value()
    processors = services["processors"]["environment"]
    assert processors["ROBOSTREAM_PROCESSORS__APP_ID"] == defaults.processors.app_id
    sinks_port = int(services["sinks"]["environment"]["ROBOSTREAM_SINKS__PORT"])
    assert sinks_port == defaults.sinks.port and str(sinks_port) in services["sinks"]["expose"]
    live_port = int(services["sinks-live"]["environment"]["ROBOSTREAM_SINKS__LIVE_PORT"])
    assert live_port == defaults.sinks.live_port and str(live_port) in services["sinks-live"]["expose"]
    for name, port in (("gateway", defaults.gateway.port), ("api", defaults.api.port),
                       ("schema-registry", defaults.schema_registry.port), ("sinks", sinks_port),
                       ("sinks-live", live_port)):
        assert f"127.0.0.1:{port}/" in " ".join(services[name]["healthcheck"]["test"]), name
    # a WebSocket-only server: healthy when it takes a TCP connection on its port
    assert f"('127.0.0.1', {defaults.foxglove.port})" in " ".join(services["foxglove"]["healthcheck"]["test"])


def test_compose_runs_the_stores_and_the_live_view_in_separate_sink_workers(
    compose: dict[str, Any], defaults: Settings,
) -> None:
    """Like the local stack (sinks.split_live): `sinks` runs the store connectors, `sinks-live`
    the live view's, so every default connector runs in exactly one of them."""
    from robostream.sinks import select_connectors

    assert defaults.sinks.split_live
    roles = {}
    for name in ("sinks", "sinks-live"):
        command = compose["services"][name]["command"]
        roles[name] = command[command.index("--role") + 1]
    assert roles == {"sinks": "store", "sinks-live": "live"}
    store = {c.name for c in select_connectors(defaults, None, "store")}
    live = {c.name for c in select_connectors(defaults, None, "live")}
    assert live == {"redis", "redis-frames"} and store == {"mongo", "s3"}


# -- commands -----------------------------------------------------------------------------------

@pytest.mark.parametrize("service", ["topics", "schema-registry", "gateway", "processors", "sinks",
                                     "sinks-live", "api", "foxglove"])
def test_service_command_exists_in_the_cli(compose: dict[str, Any], service: str) -> None:
    command = compose["services"][service]["command"]
    if isinstance(command, str):
        command = shlex.split(command)
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, f"robostream {' '.join(command)} --help:\n{result.output}"
    assert "Usage: robostream" in result.output


def test_cli_check_is_live() -> None:
    """An unknown command or option fails the check above."""
    runner = CliRunner()
    assert runner.invoke(app, ["sinks", "run", "--help"]).exit_code != 0
    assert runner.invoke(app, ["gateway", "--listen", "x", "--help"]).exit_code != 0


def test_scaled_services_share_their_group(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["processors"]["deploy"]["replicas"] >= 2
    assert services["sinks"]["deploy"]["replicas"] >= 2
    for name in ("processors", "sinks"):  # replicas cannot publish one host port
        assert "ports" not in services[name], name


# -- Dockerfile and .dockerignore ---------------------------------------------------------------

def dockerfile_stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(stage name, [(INSTRUCTION, arguments)])]`` with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.search(r"\bAS\s+(\S+)", args, re.IGNORECASE)
            stages.append((match.group(1) if match else "", []))
        elif stages:
            stages[-1][1].append((instruction, args.strip()))
    return stages


def test_dockerfile_is_multi_stage_and_runs_robostream_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    names = [name for name, _ in stages]
    assert "build" in names and names[-1] == "runtime", names
    runtime = dict(stages[-1][1])
    user = runtime["USER"].split(":")[0]
    assert user not in ("root", "0", ""), runtime["USER"]
    assert json.loads(runtime["ENTRYPOINT"]) == ["robostream"]
    copies = [args for instruction, args in stages[-1][1] if instruction == "COPY"]
    assert any("--from=build /opt/venv" in c for c in copies), copies
    assert not any(instruction == "RUN" and "uv " in args for instruction, args in stages[-1][1])


def test_dockerfile_installs_the_locked_runtime_dependencies_only() -> None:
    build = dict(dockerfile_stages())["build"]
    syncs = [args for instruction, args in build if instruction == "RUN" and "uv sync" in args]
    assert syncs
    for args in syncs:
        for flag in ("--frozen", "--no-dev", "--no-group stack"):
            assert flag in args, f"{flag} missing: {args}"
    copied = " ".join(args for instruction, args in build if instruction == "COPY")
    assert "pyproject.toml uv.lock" in copied


def test_dockerignore_keeps_the_build_context_to_what_the_image_needs() -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "uv.lock", "README.md", "config.yaml", "src", "sdk"}
    for needed in included:
        assert (ROOT / needed).exists(), needed
