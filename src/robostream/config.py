"""Typed settings: ``config.yaml`` loaded into pydantic models, environment variables on top.

Precedence (highest first): keyword arguments, ``ROBOSTREAM_*`` environment variables
(``__`` separates nesting, e.g. ``ROBOSTREAM_KAFKA__BOOTSTRAP=10.0.0.5:9092``), the YAML file
(``ROBOSTREAM_CONFIG`` or ``./config.yaml``), then the defaults below.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from robostream.errors import RobostreamError

# Robot, session and camera ids: one definition, the robot SDK's (robots check ids before sending).
from robostream_sdk.contract import ID_PATTERN as ID_PATTERN
from robostream_sdk.contract import validate_id as validate_id

ENV_PREFIX = "ROBOSTREAM_"
CONFIG_ENV = "ROBOSTREAM_CONFIG"
DEFAULT_CONFIG_FILE = "config.yaml"

#: The YAML file :func:`load_settings` was given, for :meth:`Settings.settings_customise_sources`
#: (a context variable: each thread and task sees its own, unlike ``os.environ``).
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("robostream_config_file", default=None)


class Section(BaseModel):
    """A config section: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_tls_pair(cert: Path | None, key: Path | None) -> None:
    """A server's TLS certificate and key: both or neither, and both files readable."""
    if (cert is None) != (key is None):
        raise ValueError("tls_cert and tls_key go together: set both or neither")
    for what, path in (("tls_cert", cert), ("tls_key", key)):
        if path is not None and not path.is_file():
            raise ValueError(f"{what} {path} is not a file (a PEM {what[4:]} is expected)")


def _port_of(url: str, default: int) -> int:
    return urlsplit(url if "//" in url else f"//{url}").port or default


class KafkaSettings(Section):
    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,...]")
    client_id: str = "robostream"
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    linger_ms: int = Field(1, ge=0, le=10_000)
    replication_factor: int = Field(
        1, ge=1, le=5,
        description="replicas per topic; unset: the local stack's brokers (stack.kafka_brokers), at most 3",
    )
    client_rack: str | None = Field(
        None, min_length=1, max_length=255,
        description="the rack (availability zone) this machine is in, as the brokers' broker.rack names it: "
                    "consumers (processors, sinks, replay) set client.rack and read from a replica in it "
                    "when the brokers run RackAwareReplicaSelector; unset: they read from leaders",
    )

    @field_validator("bootstrap")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for part in value.split(","):
            if not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", part.strip()):
                raise ValueError("expected host:port[,host:port...], e.g. 127.0.0.1:9092")
        return value

    @property
    def port(self) -> int:
        return _port_of(self.bootstrap.split(",")[0], 9092)

    def rack_config(self) -> dict[str, str]:
        """librdkafka's ``client.rack`` for a consumer when a rack is configured (KIP-392), else nothing."""
        return {"client.rack": self.client_rack} if self.client_rack else {}


class SchemaRegistrySettings(Section):
    url: str = Field("http://127.0.0.1:8081", pattern=r"^https?://")
    topic: str = "_schemas"

    @property
    def port(self) -> int:
        return _port_of(self.url, 8081)


#: The local stack's MongoDB (SecantusDB) without retryable writes: that server keeps the outcome
#: of every retryable write in a registry it scans and sorts on each write (~15 ms per write
#: command once 10,000 are recorded, against 0.8 ms without), which starved the sinks of ten
#: robots with media. The sinks' writes are idempotent and the tasks retry failed batches, so
#: nothing depends on the driver's retry. Real MongoDB (docker-compose) keeps the default.
LOCAL_MONGO_URI = "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false"


class MongoSettings(Section):
    uri: str = Field(LOCAL_MONGO_URI, pattern=r"^mongodb(\+srv)?://")
    database: str = "robostream"
    hot_retention_days: int = Field(
        30, ge=1, description="the hot tier: TTL of telemetry, telemetry_lod, frames_metadata, "
        "aggregations and GridFS thumbnails; S3 objects stay in the standard class this long",
    )

    @property
    def port(self) -> int:
        return _port_of(self.uri, 27017)


class S3Settings(Section):
    endpoint: str = Field("http://127.0.0.1:8333", pattern=r"^https?://")
    bucket: str = Field("robostream", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = "us-east-1"
    access_key: str = "robostream"
    secret_key: SecretStr = SecretStr("robostream-secret")
    presign_expiry_s: int = Field(3600, ge=1, le=7 * 24 * 3600)
    multipart_threshold_bytes: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)
    public_endpoint: str | None = Field(
        None, pattern=r"^https?://",
        description="the endpoint browsers reach, used only to presign URLs (null: endpoint); SigV4 "
        "signs the Host, so it must be the host:port the browser calls",
    )

    @property
    def port(self) -> int:
        return _port_of(self.endpoint, 8333)

    @property
    def presign_endpoint(self) -> str:
        """The endpoint presigned URLs point at: ``public_endpoint``, else ``endpoint``."""
        return self.public_endpoint or self.endpoint


class RetentionSettings(Section):
    """Retention tiers after the hot one (``mongo.hot_retention_days``); see docs/retention.md.

    S3 objects under ``raw/`` move to ``warm_storage_class`` after the hot days, to
    ``cold_storage_class`` after ``warm_days`` and expire after ``cold_days``; ``processed/``
    (thumbnails) expire after ``processed_days``. Sessions' summaries live ``cold_days``.
    """

    warm_days: int = Field(90, ge=1, description="raw S3 objects leave the warm class after this many days")
    cold_days: int = Field(365, ge=1, description="raw S3 objects and sessions' summaries expire then")
    processed_days: int = Field(30, ge=1, description="processed/ S3 objects (thumbnails) expire then")
    warm_storage_class: str | None = Field(
        "STANDARD_IA", pattern=r"^[A-Z][A-Z0-9_]*$",
        description="S3 class of the warm tier (null: no transition)")
    cold_storage_class: str | None = Field(
        "GLACIER_IR", pattern=r"^[A-Z][A-Z0-9_]*$",
        description="S3 class of the cold tier, also of originals and bundles when written (null: none)")
    s3_lifecycle: bool = Field(True, description="write the bucket's lifecycle rules at sink start-up")


class RedisSettings(Section):
    url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    latest_window: int = Field(1000, ge=1)
    frame_ttl_s: int = Field(3600, ge=1)

    @property
    def port(self) -> int:
        return _port_of(self.url, 6379)


class StackSettings(Section):
    """The local embedded stack. Server ports come from the endpoints above."""

    state_dir: Path = Path(".robostream")
    kafka_version: str = "4.4.0"
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_brokers: int = Field(
        1, ge=1, le=5,
        description="Kafka nodes of the local stack (KRaft, broker + controller each); node i listens "
                    "on the kafka.bootstrap port + 2(i-1) and the controller port + 2(i-1)",
    )
    kafka_heap: str = Field("768m", pattern=r"^\d+[mMgG]$", description="JVM heap of each Kafka node")
    seaweed_port_base: int = Field(
        18340, ge=1024, le=55000,
        description="first of the internal SeaweedFS ports (master, volume, filer and gRPC)",
    )
    start_timeout_s: float = Field(90.0, gt=0)
    stop_timeout_s: float = Field(20.0, gt=0)


class RobotSettings(Section):
    id: str = Field(pattern=ID_PATTERN)
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    cameras: list[str] = Field(default_factory=lambda: ["front"])


#: Named camera resolutions, accepted wherever a ``WxH`` one is (``robostream simulate --resolution 1080p``).
NAMED_RESOLUTIONS = {"360p": "640x360", "720p": "1280x720", "1080p": "1920x1080"}


class RateSettings(Section):
    pose_hz: float = Field(100.0, gt=0)
    joints_hz: float = Field(100.0, gt=0)
    imu_hz: float = Field(100.0, gt=0)
    force_torque_hz: float = Field(30.0, gt=0)
    metrics_hz: float = Field(1.0, gt=0)
    camera_fps: float = Field(30.0, ge=0)
    camera_burst_s: float = Field(2.0, ge=0)
    camera_burst_every_s: float = Field(30.0, gt=0)
    resolution: str = Field("640x360", pattern=r"^\d{2,5}x\d{2,5}$")

    @field_validator("resolution", mode="before")
    @classmethod
    def _named_resolution(cls, value: object) -> object:
        return NAMED_RESOLUTIONS.get(value.strip().lower(), value) if isinstance(value, str) else value


class BatchingSettings(Section):
    max_messages: int = Field(100, ge=1, le=100_000)
    max_bytes: int = Field(1024 * 1024, ge=1024)
    max_delay_ms: int = Field(50, ge=0)
    spool_dir: Path = Path(".robostream/spool")
    spool_segment_bytes: int = Field(16 * 1024 * 1024, ge=4096)
    spool_segment_age_s: float = Field(60.0, gt=0)
    spool_max_bytes: int = Field(1024 * 1024 * 1024, ge=4096)


class SimulatorSettings(Section):
    """The robot simulator (``robostream simulate``); rates come from ``rates``."""

    gateway_url: str | None = Field(
        None, pattern=r"^(wss?|https?)://",
        description="gateway to stream to; null: gateway.host:gateway.port (https/wss with gateway.tls_cert)",
    )
    transport: Literal["ws", "https"] = "ws"
    media: bool = Field(True, description="camera bursts, audio and video; false: telemetry and small files")
    extras_every_s: float = Field(2.0, gt=0, description="one of the other data types, in turn, this often")
    log_every_s: float = Field(1.0, gt=0, description="a log line every so often")
    rpc: bool = Field(True, description="answer RPC requests (ping, get_status, set_parameter, ...)")
    samples_per_record: int = Field(10, ge=1, le=10_000, description="time_series samples per record")
    record_span_s: float = Field(
        0.02, gt=0, description="longest time a time_series record waits to fill (slow streams never wait)")
    pointcloud_stride: int = Field(8, ge=1, le=64, description="one point cloud point per N x N pixels")
    jpeg_quality: int = Field(85, ge=1, le=100)
    seed: int = Field(0, ge=0, description="random seed of trajectories and scenes (+ robot index)")
    tokens_file: Path | None = Field(
        None, description="YAML {robot_id: token}: the robots' plaintext tokens (development only)"
    )
    ca_file: Path | None = Field(None, description="CA certificate to trust for wss/https (self-signed)")


class TopicSettings(Section):
    prefix: str = Field("robot", pattern=r"^[a-z][a-z0-9_]*$")
    partitions: int = Field(6, ge=1, le=1024)
    retention_hours: int = Field(7 * 24, ge=1)
    media_retention_hours: int = Field(24, ge=1)
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)


class HttpServerSettings(Section):
    """Read deadlines of an HTTP server (the gateway, the API): slow clients are cut (slowloris)."""

    header_timeout_s: float = Field(
        10.0, gt=0, description="a request's headers must arrive within this from its first byte, "
        "else 408 and the connection is closed")
    body_timeout_s: float = Field(
        60.0, gt=0, description="a request body must arrive within this after the headers, else 408 "
        "and the connection is closed (the gateway's streaming POST /v1/ingest: idle_timeout_s instead)")
    keepalive_timeout_s: float = Field(
        75.0, gt=0, description="a connection with no request under way is closed after this")


class GatewaySettings(HttpServerSettings):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_inline_bytes: int = Field(512 * 1024, ge=1024)
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_batch_messages: int = Field(10_000, ge=1)
    max_connections_per_robot: int = Field(4, ge=1)
    max_messages_per_s_per_robot: float | None = Field(
        None, gt=0,
        description="envelopes per second one robot may send over all its connections (token bucket); "
        "over it a batch is nacked rate_limited with retry_after_ms (null: no limit)",
    )
    rate_burst_messages: int = Field(
        10_000, ge=1, description="token bucket size: envelopes a robot may send at once after a pause"
    )
    idle_timeout_s: float = Field(60.0, gt=0)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Backpressure: bytes received and not yet acked (frames waiting for Kafka's delivery reports).
    max_inflight_bytes_per_connection: int = Field(64 * 1024 * 1024, ge=1024)
    max_inflight_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    retry_after_ms: int = Field(1000, ge=1, description="retry hint of slow_down frames / HTTP 429")
    delivery_timeout_s: float = Field(120.0, gt=0, description="Kafka delivery timeout per record")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="graceful shutdown: flush and ack")
    rpc_default_timeout_s: float = Field(30.0, gt=0, description="deadline of RPC requests without one")
    rpc_max_pending_per_robot: int = Field(1000, ge=1)
    rpc_lease_s: float = Field(
        1.5, gt=0, le=60, description="several gateways: a gateway's RPC lease in Redis (renewed every "
        "third); once it lapses (gateway killed) another gateway answers the calls it had sent"
    )
    claim_check_workers: int = Field(4, ge=1, le=64, description="parallel S3 uploads")

    @model_validator(mode="after")
    def _consistent_bounds(self) -> GatewaySettings:
        if not self.max_frame_bytes <= self.max_inflight_bytes_per_connection <= self.max_inflight_bytes:
            raise ValueError(
                "expected max_frame_bytes <= max_inflight_bytes_per_connection <= max_inflight_bytes"
            )
        check_tls_pair(self.tls_cert, self.tls_key)
        return self


class AuthSettings(Section):
    tokens_file: Path | None = Field(
        None, description="YAML file of robot_id: sha256(token) lines, merged with robots[].token_sha256"
    )
    allow_unauthenticated: bool = Field(
        False, description="accept robots without a token (local demos only)"
    )


ConnectorKind = Literal["mongo", "s3", "redis"]

#: The connectors of a fresh install (name -> kind, catalogue topics relative to ``topics.prefix``).
#: Redis has two: telemetry, statistics and logs apart from camera frames, so a telemetry record
#: never waits in one consumer's batch behind frame records (the live view's p99 with media).
DEFAULT_CONNECTOR_TOPICS: dict[str, tuple[ConnectorKind, list[str]]] = {
    "mongo": ("mongo", ["sessions", "time_series", "images", "derived.stats_1m", "derived.stats_1h",
                        "derived.frames"]),
    "s3": ("s3", ["images", "video", "audio", "file", "safetensors", "msgpack", "zip", "tar",
                  "derived.frames"]),
    "redis": ("redis", ["time_series", "derived.stats_1s", "derived.stats_1m", "derived.stats_1h", "log"]),
    "redis-frames": ("redis", ["images", "derived.frames"]),
}


class ConnectorSettings(Section):
    """One sink connector (Kafka Connect's vocabulary; see docs/sinks.md).

    ``topics`` are catalogue names relative to ``topics.prefix`` (``time_series``, ``sessions``,
    ``derived.stats_1m`` ...); ``topics_regex`` matches full topic names, ``${prefix}`` standing
    for the escaped prefix. Exactly one of the two is set.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    kind: ConnectorKind
    topics: list[str] = Field(default_factory=list)
    topics_regex: str | None = None
    tasks: int = Field(1, ge=1, le=64, description="tasks.max: consumers in group connect-<name>")
    batch_size: int = Field(500, ge=1, le=100_000, description="records written per batch")
    flush_interval_ms: int = Field(
        1000, ge=0, le=600_000,
        description="longest wait for more records before a write (0: write what each poll returned)")
    offset_flush_interval_ms: int = Field(
        1000, ge=0, le=600_000,
        description="offset.flush.interval.ms: written offsets are committed (asynchronously) this often")
    errors_tolerance: Literal["none", "all"] = Field(
        "none", description="none: a bad record fails the task; all: it goes to the DLQ, the task goes on"
    )
    dlq_topic: str | None = Field(
        "dlq", description="errors.deadletterqueue.topic.name, a catalogue name (null: log only)"
    )
    dlq_context_headers: bool = Field(True, description="errors.deadletterqueue.context.headers.enable")
    errors_retry_timeout_ms: int = Field(
        -1, ge=-1, description="give up (task FAILED) after a store is down this long; -1 never"
    )
    errors_retry_delay_max_ms: int = Field(30_000, ge=10, description="longest backoff between retries")
    enabled: bool = True

    @field_validator("topics_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value.replace("${prefix}", "robot"))
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_topic_source(self) -> ConnectorSettings:
        if bool(self.topics) == (self.topics_regex is not None):
            raise ValueError("set exactly one of topics (a list) or topics_regex")
        return self


def default_connectors() -> list[ConnectorSettings]:
    """The connectors of a fresh install: MongoDB, S3 and Redis (two) over their topics."""
    return [
        ConnectorSettings(name=name, kind=kind, topics=topics, errors_tolerance="all")
        for name, (kind, topics) in DEFAULT_CONNECTOR_TOPICS.items()
    ]


SinkRole = Literal["all", "live", "store"]


class SinksSettings(Section):
    """The sink workers (``robostream sink run``) and their Kafka Connect-style REST status APIs.

    The live view's connectors (``live_kinds``: Redis) can run in a worker process of their own
    (``--role live``) beside the store worker (``--role store``: MongoDB, S3), so the stores' bulk
    writes (BSON of whole minutes, pyramid bins, uploads) never hold the live path's GIL, and the
    store worker yields the CPU to it under overload (``store_niceness``). Delivery guarantees do
    not change: each connector keeps its own consumer group and commits after its own writes.
    """

    host: str = "127.0.0.1"
    port: int = Field(8083, ge=0, le=65535,
                      description="REST API port of the worker (of the store worker when split)")
    split_live: bool = Field(
        True, description="the local stack runs the live_kinds connectors in a worker of their own")
    live_port: int = Field(8084, ge=0, le=65535, description="REST API port of the live worker")
    live_kinds: list[ConnectorKind] = Field(
        default_factory=lambda: list[ConnectorKind](["redis"]),
        description="connector kinds on the live view's path")
    store_niceness: int = Field(
        10, ge=0, le=19,
        description="the store worker lowers its CPU priority by this much (nice): under overload "
                    "the live path gets the CPU first and the stores catch up after")

    def rest_port(self, role: SinkRole) -> int:
        """The REST API port of the worker of ``role``: ``live_port`` for the live worker, else ``port``."""
        return self.live_port if role == "live" else self.port


class ProcessorSettings(Section):
    """The stream processors (``robostream process``, a Faust app; see docs/processors.md)."""

    app_id: str = Field("robostream-processors", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$",
                        description="Faust app id: consumer group and changelog topic prefix")
    workers: int = Field(1, ge=1, le=64, description="worker processes `robostream process` starts")
    web_port: int | None = Field(None, ge=1, le=65535, description="Faust web server port; null: off")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus GET /metrics port of worker 1 (worker N: + N - 1; "
        "0: any free port); null: off"
    )
    metrics_host: str = Field("127.0.0.1", description="address the metrics server listens on")
    batch_max: int = Field(2000, ge=1, le=100_000, description="records per stream.take() batch")
    batch_within_s: float = Field(0.2, gt=0, le=60, description="longest wait to fill a batch")
    allowed_lateness_s: float = Field(2.0, ge=0, description="event-time lateness before a window closes")
    idle_s: float = Field(
        5.0, gt=0, description="silence after which a session's event time follows the clock"
    )
    pool_workers: int = Field(1, ge=1, le=64, description="processes encoding frames (off the event loop)")
    keyframe_interval: int = Field(30, ge=1, le=600, description="H.264 frames between keyframes")
    segment_frames: int = Field(60, ge=1, le=3600, description="frames per H.264 segment")
    segment_gap_s: float = Field(1.0, gt=0, description="a longer gap between frames ends a segment")
    h264_crf: int = Field(23, ge=0, le=51)
    h264_preset: str = Field("veryfast", pattern=r"^[a-z]+$")
    preview: str = Field("640x360", pattern=r"^\d{1,5}x\d{1,5}$")
    thumbnail: str = Field("120x68", pattern=r"^\d{1,5}x\d{1,5}$")
    png_level: int = Field(4, ge=0, le=9, description="zlib level of depth PNGs (rows Sub-filtered)")
    draco_quantization_bits: int = Field(14, ge=1, le=30)
    draco_compression_level: int = Field(7, ge=0, le=10)
    bundles: bool = Field(True, description="write hourly {hour}_bundle.tar.gz bundles")
    bucketed_output: bool = Field(
        False, description="also write every telemetry point to derived.telemetry_bucketed (a second "
        "full copy of time_series, for a sink that lands it; off: windows only)"
    )
    status_interval_s: float = Field(10.0, gt=0, description="throughput log line every so often")
    session_timeout_s: float = Field(30.0, ge=6, le=300,
                                     description="a worker silent this long loses its partitions")


class ApiSettings(HttpServerSettings):
    """The ML-Dash API (``robostream api``): live WebSocket, history, frames, stats, viewer."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0: any free port)")
    read_tokens: list[str] = Field(
        default_factory=list, description="sha256 hex digests of the bearer tokens allowed to read"
    )
    anonymous_read: bool = Field(
        False, description="serve reads without a token (local demos only; ignores read_tokens)"
    )
    write_tokens: list[str] = Field(
        default_factory=list,
        description="sha256 hex digests of the bearer tokens allowed to call robots "
        "(POST /v1/robots/{id}/rpc); separate from read_tokens, never anonymous (empty: nobody may call)",
    )
    rpc_default_timeout_s: float = Field(
        10.0, gt=0, description="deadline of a robot call whose request gives no timeout_s"
    )
    rpc_max_timeout_s: float = Field(120.0, gt=0, description="longest timeout_s a robot call may ask")
    cors_origins: list[str] = Field(
        default_factory=list, description="dashboard origins allowed by CORS ('*': any origin)"
    )
    live_queue_size: int = Field(
        1000, ge=1, le=1_000_000, description="messages buffered per WebSocket client; then drop-oldest"
    )
    default_max_points: int | None = Field(
        None, ge=1, description="max_points of telemetry requests that give none (null: every point)"
    )
    max_points_limit: int = Field(1_000_000, ge=1, description="largest max_points a request may ask")
    history_slice_s: float = Field(
        600.0, gt=0, le=86_400,
        description="telemetry is read in time slices this long (10 minute documents per channel group)"
    )
    frames_limit: int = Field(1000, ge=1, description="most frames one GET /v1/frames returns")
    stats_limit: int = Field(10_000, ge=1, description="most windows one GET /v1/stats returns")
    tls_cert: Path | None = Field(None, description="PEM certificate (chain): serve https:// and wss://")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        check_tls_pair(self.tls_cert, self.tls_key)
        return self

    @field_validator("read_tokens", "write_tokens")
    @classmethod
    def _sha256_hex(cls, value: list[str]) -> list[str]:
        for digest in value:
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError("expected sha256 hex digests (64 lowercase hex digits) of the tokens")
        return value


class FoxgloveSettings(Section):
    """``robostream foxglove``: the live stream over the Foxglove WebSocket protocol."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535, description="WebSocket port Foxglove connects to (0: any free)")
    session_idle_s: float = Field(
        60.0, gt=0, description="a robot is advertised while its newest sample is younger than this"
    )
    discovery_interval_s: float = Field(1.0, gt=0, description="how often new robots and sessions are sought")
    queue_size: int = Field(
        1000, ge=1, le=1_000_000, description="live messages buffered per followed robot; then drop-oldest"
    )


class Settings(BaseSettings):
    """All of robostream's settings. Build one with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    schema_registry: SchemaRegistrySettings = SchemaRegistrySettings()
    mongo: MongoSettings = MongoSettings()
    s3: S3Settings = S3Settings()
    retention: RetentionSettings = RetentionSettings()
    redis: RedisSettings = RedisSettings()
    stack: StackSettings = StackSettings()
    robots: list[RobotSettings] = Field(
        default_factory=lambda: [RobotSettings(id=f"robot_{i:03d}") for i in (1, 2, 3)]
    )
    rates: RateSettings = RateSettings()
    batching: BatchingSettings = BatchingSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    topics: TopicSettings = TopicSettings()
    gateway: GatewaySettings = GatewaySettings()
    auth: AuthSettings = AuthSettings()
    sinks: SinksSettings = SinksSettings()
    processors: ProcessorSettings = ProcessorSettings()
    api: ApiSettings = ApiSettings()
    foxglove: FoxgloveSettings = FoxgloveSettings()
    connectors: list[ConnectorSettings] = Field(default_factory=default_connectors)

    @field_validator("connectors")
    @classmethod
    def _unique_connector_names(cls, value: list[ConnectorSettings]) -> list[ConnectorSettings]:
        names = [c.name for c in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"connector names must be unique; repeated: {', '.join(duplicates)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = _CONFIG_FILE.get() or Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file))

    @model_validator(mode="after")
    def _tiers_in_order(self) -> Settings:
        """Hot, warm and cold tiers end in that order (S3 refuses transitions out of order)."""
        hot, tiers = self.mongo.hot_retention_days, self.retention
        if not hot < tiers.warm_days < tiers.cold_days:
            raise ValueError(f"retention tiers out of order: expected mongo.hot_retention_days ({hot}) < "
                             f"retention.warm_days ({tiers.warm_days}) < retention.cold_days "
                             f"({tiers.cold_days})")
        return self

    @model_validator(mode="after")
    def _local_cluster(self) -> Settings:
        """A local cluster (``stack.kafka_brokers`` > 1): a single bootstrap address becomes the
        list of every node, and an unset replication factor becomes the cluster's (at most 3)."""
        brokers = self.stack.kafka_brokers
        if brokers == 1:
            return self
        nodes = local_kafka_nodes(self)
        ports = [p for node in nodes for p in (node.port, node.controller_port)]
        if len(set(ports)) != len(ports):
            raise ValueError(f"stack.kafka_brokers = {brokers}: a node's controller port (stack."
                             "kafka_controller_port + 2 per node) collides with a node's client port "
                             "(the kafka.bootstrap port + 2 per node); use the bootstrap port + 1")
        update: dict[str, Any] = {}
        if "," not in self.kafka.bootstrap:
            update["bootstrap"] = ",".join(node.address for node in nodes)
        if "replication_factor" not in self.kafka.model_fields_set:
            update["replication_factor"] = min(3, brokers)
        if update:
            object.__setattr__(self, "kafka", self.kafka.model_copy(update=update))
        return self

    @property
    def state_dir(self) -> Path:
        """The stack's state folder as an absolute path (not cached: model_copy must see changes)."""
        return self.stack.state_dir.resolve()


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka node of the local stack (KRaft, broker + controller)."""

    node_id: int
    host: str
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def rack(self) -> str:
        """rack-a, rack-b, ...: one rack per node, as in docker-compose.yml's cluster profile."""
        return f"rack-{chr(ord('a') + self.node_id - 1)}"


def local_kafka_nodes(settings: Settings) -> list[KafkaNode]:
    """The local stack's Kafka nodes: node i on the first bootstrap port + 2(i-1) and the
    controller port + 2(i-1) (one source for the stack and the bootstrap list)."""
    first = settings.kafka.bootstrap.split(",")[0].strip()
    host = first.rsplit(":", 1)[0]
    return [KafkaNode(i, host, settings.kafka.port + 2 * (i - 1),
                      settings.stack.kafka_controller_port + 2 * (i - 1))
            for i in range(1, settings.stack.kafka_brokers + 1)]


class ConfigError(RobostreamError):
    """An invalid configuration: names the key, the bad value and the expected form."""


def _describe(err: Any) -> str:
    if not err["loc"]:  # a check across sections
        return f"  {err['msg'].removeprefix('Value error, ')}"
    key = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    shown = "(missing)" if err["type"] == "missing" else repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    env = ENV_PREFIX + "__".join(str(p) for p in err["loc"] if not isinstance(p, int)).upper()
    return f"  {key} = {shown}: {err['msg']}  (config.yaml key '{key}' or env {env})"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config_file`` (default: $ROBOSTREAM_CONFIG or ./config.yaml).

    Raises :class:`ConfigError` listing every bad key with its value and the expected form.
    """
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file not found: {config_file}")
    token = _CONFIG_FILE.set(None if config_file is None else Path(config_file))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = "\n".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid configuration ({exc.error_count()} problem(s)):\n{lines}") from None
    finally:
        _CONFIG_FILE.reset(token)
