"""The topic catalogue: every Kafka topic robostream uses, its name, layout and configs.

Topic names are built here and nowhere else: other parts call the name helpers below
(``topic_for``, ``dlq_topic``, ``stats_topic`` ...) with their settings (or the bare prefix).

Retention by kind:

* data topics (``<prefix>.<data_type>``) keep ``topics.retention_hours``;
* media topics (images, video, audio and the other big binaries in :data:`MEDIA_TYPES`) keep
  ``topics.media_retention_hours``;
* the DLQ keeps :func:`dlq_retention_hours` (at least 30 days), so a bad record outlives the
  data it was rejected from;
* ``<prefix>.sessions`` and the schema registry topic are compacted (latest record per key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from robostream.config import Settings, TopicSettings
from robostream.schemas.datatypes import BINARY_TYPES, DataType
from robostream.times import HOUR_US, MINUTE_US, SECOND_US

#: A prefix, or the settings holding it.
PrefixSource = Settings | TopicSettings | str

#: Key of every robot topic: ordering is per robot session.
ROBOT_KEY = "robot_id/session_id"

#: A topic namespace: the prefix itself, or dotted words such as ``replay.robot`` (where
#: ``robostream replay`` re-publishes a session). ``topics.prefix`` is one word.
NAMESPACE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
_NAMESPACE_RE = re.compile(NAMESPACE_PATTERN)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

#: Types whose topics keep ``topics.media_retention_hours`` instead of ``retention_hours``: the big
#: binaries, i.e. every :data:`~robostream.schemas.datatypes.BINARY_TYPES` member but ``msgpack``
#: (a blob too, but structured robot messages, so it keeps the normal retention).
MEDIA_TYPES: frozenset[DataType] = BINARY_TYPES - {DataType.MSGPACK}

#: The DLQ keeps records at least this long.
DLQ_MIN_RETENTION_HOURS = 30 * 24
#: Extra room on the DLQ for the error headers added to a record that was already at the limit.
DLQ_HEADROOM_BYTES = 64 * 1024


class TopicKind(StrEnum):
    """What a topic is for; decides its retention and cleanup policy."""

    DATA = "data"
    MEDIA = "media"
    RPC = "rpc"
    SESSIONS = "sessions"
    DLQ = "dlq"
    DERIVED = "derived"
    INFRASTRUCTURE = "infrastructure"


class StatsResolution(StrEnum):
    """Window sizes of the aggregation topics (the ``{resolution}`` of Redis ``stats:`` keys)."""

    SECOND = "1s"
    MINUTE = "1m"
    HOUR = "1h"


#: Length in microseconds of each window resolution.
RESOLUTION_US: Mapping[StatsResolution, int] = MappingProxyType({
    StatsResolution.SECOND: SECOND_US,
    StatsResolution.MINUTE: MINUTE_US,
    StatsResolution.HOUR: HOUR_US,
})


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One catalogued topic: what ``robostream topics create`` makes and ``describe`` checks."""

    name: str
    kind: TopicKind
    partitions: int
    replication_factor: int
    key: str
    purpose: str
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def cleanup_policy(self) -> str:
        """``delete``, ``compact`` or ``compact,delete``."""
        return self.configs.get("cleanup.policy", "delete")

    @property
    def retention_ms(self) -> int | None:
        """Retention in milliseconds; ``None`` when compacted only (kept forever)."""
        if "delete" not in self.cleanup_policy:
            return None
        return int(self.configs["retention.ms"])


# --- name helpers -------------------------------------------------------------------------------


def prefix_of(source: PrefixSource) -> str:
    """The topic prefix held by ``source`` (settings, topic settings or the prefix itself)."""
    if isinstance(source, Settings):
        return source.topics.prefix
    if isinstance(source, TopicSettings):
        return source.prefix
    return source


def topic_for(data_type: DataType | str, source: PrefixSource) -> str:
    """The topic of one data type, e.g. ``robot.time_series``."""
    return f"{prefix_of(source)}.{DataType(data_type).value}"


def data_type_of(topic: str, source: PrefixSource) -> DataType | None:
    """The data type whose topic is ``topic``, or ``None`` for any other topic.

    ``source`` may also be a dotted namespace (``data_type_of("replay.robot.log", "replay.robot")``).
    """
    head = prefix_of(source) + "."
    if not topic.startswith(head):
        return None
    try:
        return DataType(topic[len(head):])
    except ValueError:
        return None


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it can prefix topic names (:data:`NAMESPACE_PATTERN`), else raise
    ``ValueError``."""
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(
            f"invalid topic namespace {namespace!r}: expected lowercase words of [a-z0-9_], each "
            "starting with a letter, joined by dots (e.g. replay.robot)"
        )
    return namespace


def replay_namespace(source: PrefixSource) -> str:
    """Where ``robostream replay`` re-publishes by default: ``replay.<prefix>``."""
    return f"replay.{prefix_of(source)}"


def rpc_requests_topic(source: PrefixSource) -> str:
    """RPC requests (commands) sent to robots."""
    return f"{prefix_of(source)}.rpc.requests"


def rpc_responses_topic(source: PrefixSource) -> str:
    """RPC responses robots send back."""
    return f"{prefix_of(source)}.rpc.responses"


def sessions_topic(source: PrefixSource) -> str:
    """Session lifecycle records (started, updated, ended)."""
    return f"{prefix_of(source)}.sessions"


def dlq_topic(source: PrefixSource) -> str:
    """The dead letter queue: rejected or unprocessable records with the reason."""
    return f"{prefix_of(source)}.dlq"


def bucketed_telemetry_topic(source: PrefixSource) -> str:
    """Telemetry points enriched with ``bucket_hour`` and ``bucket_minute``."""
    return f"{prefix_of(source)}.derived.telemetry_bucketed"


def stats_topic(resolution: StatsResolution | str, source: PrefixSource) -> str:
    """Windowed aggregations at one resolution, e.g. ``robot.derived.stats_1m``."""
    return f"{prefix_of(source)}.derived.stats_{StatsResolution(resolution).value}"


def frames_topic(source: PrefixSource) -> str:
    """Frame metadata produced by frame compaction (S3 references, thumbnails)."""
    return f"{prefix_of(source)}.derived.frames"


def schemas_topic(settings: Settings) -> str:
    """The schema registry's compacted storage topic (not under the prefix)."""
    return settings.schema_registry.topic


# --- configs ------------------------------------------------------------------------------------


def min_insync_replicas(replication_factor: int) -> int:
    """1 below three replicas (a single loss must not stop writes), else a majority."""
    return 1 if replication_factor < 3 else replication_factor // 2 + 1


def dlq_retention_hours(topics: TopicSettings) -> int:
    """DLQ retention: twice the data retention, and at least 30 days."""
    longest = max(topics.retention_hours, topics.media_retention_hours)
    return max(DLQ_MIN_RETENTION_HOURS, 2 * longest)


def segment_ms(retention_ms: int) -> int:
    """Segment roll time: a quarter of the retention, between 1 hour and 1 day.

    Kafka deletes whole closed segments only, so a segment much longer than the retention
    would keep data well past it on a quiet topic.
    """
    return min(DAY_MS, max(HOUR_MS, retention_ms // 4))


def _common(settings: Settings, max_bytes: int | None = None) -> dict[str, str]:
    return {
        "compression.type": "producer",
        "max.message.bytes": str(max_bytes or settings.topics.max_message_bytes),
        "min.insync.replicas": str(min_insync_replicas(settings.kafka.replication_factor)),
    }


def delete_configs(settings: Settings, hours: int, max_bytes: int | None = None) -> dict[str, str]:
    """Configs of a time-retained (``cleanup.policy=delete``) topic."""
    retention = hours * HOUR_MS
    return {
        **_common(settings, max_bytes),
        "cleanup.policy": "delete",
        "retention.ms": str(retention),
        "segment.ms": str(segment_ms(retention)),
    }


def compact_configs(settings: Settings) -> dict[str, str]:
    """Configs of a compacted topic (latest record per key kept forever)."""
    return {**_common(settings), "cleanup.policy": "compact"}


# --- the catalogue ------------------------------------------------------------------------------


def _spec(
    settings: Settings, name: str, kind: TopicKind, purpose: str, configs: dict[str, str],
    *, key: str = ROBOT_KEY, partitions: int | None = None,
) -> TopicSpec:
    return TopicSpec(
        name=name,
        kind=kind,
        partitions=partitions or settings.topics.partitions,
        replication_factor=settings.kafka.replication_factor,
        key=key,
        purpose=purpose,
        configs=MappingProxyType(configs),
    )


def data_topic_specs(settings: Settings, namespace: str | None = None) -> list[TopicSpec]:
    """One topic per data type; media types keep ``media_retention_hours``.

    ``namespace`` (e.g. ``replay.robot``, see :func:`replay_namespace`) puts the same topics
    under another name than ``topics.prefix``, with the same layout and configs.
    """
    source: PrefixSource = settings if namespace is None else validate_namespace(namespace)
    specs = []
    for data_type in DataType:
        media = data_type in MEDIA_TYPES
        hours = settings.topics.media_retention_hours if media else settings.topics.retention_hours
        specs.append(_spec(
            settings, topic_for(data_type, source),
            TopicKind.MEDIA if media else TopicKind.DATA,
            f"{data_type.value} records streamed by robots (Avro, via the gateway)",
            delete_configs(settings, hours),
        ))
    return specs


def control_topic_specs(settings: Settings) -> list[TopicSpec]:
    """RPC requests/responses, sessions and the DLQ."""
    hours = settings.topics.retention_hours
    return [
        _spec(settings, rpc_requests_topic(settings), TopicKind.RPC,
              "RPC requests (commands) addressed to a robot session",
              delete_configs(settings, hours)),
        _spec(settings, rpc_responses_topic(settings), TopicKind.RPC,
              "RPC responses and errors robots send back, matched by request id",
              delete_configs(settings, hours)),
        _spec(settings, sessions_topic(settings), TopicKind.SESSIONS,
              "session lifecycle (started/updated/ended); compacted: latest state per session",
              compact_configs(settings)),
        _spec(settings, dlq_topic(settings), TopicKind.DLQ,
              "dead letters: rejected or unprocessable records, the reason in headers",
              delete_configs(settings, dlq_retention_hours(settings.topics),
                             settings.topics.max_message_bytes + DLQ_HEADROOM_BYTES),
              key="original record key"),
    ]


def derived_topic_specs(settings: Settings) -> list[TopicSpec]:
    """Topics the stream processors write and the sinks read."""
    hours = settings.topics.retention_hours
    specs = [
        _spec(settings, bucketed_telemetry_topic(settings), TopicKind.DERIVED,
              "every time_series point with bucket_hour and bucket_minute; "
              "the MongoDB sink lands it in 'telemetry'",
              delete_configs(settings, hours)),
    ]
    for resolution in StatsResolution:
        specs.append(_spec(
            settings, stats_topic(resolution, settings), TopicKind.DERIVED,
            f"{resolution.value} aggregations (count, min, max, mean, stddev, last per "
            "robot/session/metric) for Redis 'stats:' keys and Mongo 'aggregations'",
            delete_configs(settings, hours),
        ))
    specs.append(_spec(
        settings, frames_topic(settings), TopicKind.DERIVED,
        "frame compaction output (H.264 segments, PNG depth, Draco point clouds, thumbnails, "
        "hourly bundles) as S3 references; the MongoDB sink lands it in 'frames_metadata'",
        delete_configs(settings, hours),
    ))
    return specs


def infrastructure_specs(settings: Settings) -> list[TopicSpec]:
    """The schema registry's storage topic: compacted, one partition (ordered ids)."""
    configs = {
        "cleanup.policy": "compact",
        "min.insync.replicas": str(min_insync_replicas(settings.kafka.replication_factor)),
    }
    return [_spec(settings, schemas_topic(settings), TopicKind.INFRASTRUCTURE,
                  "schema registry storage: every registered Avro schema",
                  configs, key="registry key (JSON)", partitions=1)]


def catalogue(settings: Settings) -> list[TopicSpec]:
    """Every topic robostream uses, in a stable order (data, control, derived, infrastructure)."""
    return [
        *data_topic_specs(settings),
        *control_topic_specs(settings),
        *derived_topic_specs(settings),
        *infrastructure_specs(settings),
    ]


def spec_by_name(settings: Settings) -> dict[str, TopicSpec]:
    """The catalogue indexed by topic name."""
    return {spec.name: spec for spec in catalogue(settings)}


def is_ours(topic: str, settings: Settings) -> bool:
    """True for topics under the prefix and the schema registry topic."""
    return topic.startswith(prefix_of(settings) + ".") or topic == schemas_topic(settings)
