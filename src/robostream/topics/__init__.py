"""The topic catalogue (names, partitions, keys, retention) and the admin calls that apply it.

Every other part takes topic names from here: ``topic_for(DataType.IMAGES, settings)``,
``dlq_topic(settings)``, ``stats_topic("1m", settings)`` ...
"""

from robostream.topics.admin import (
    CreateReport,
    CreateResult,
    CreateStatus,
    ListedTopic,
    TopicAdminError,
    admin_client,
    create_topics,
    describe,
    list_topics,
)
from robostream.topics.catalog import (
    MEDIA_TYPES,
    ROBOT_KEY,
    StatsResolution,
    TopicKind,
    TopicSpec,
    bucketed_telemetry_topic,
    catalogue,
    data_type_of,
    dlq_topic,
    frames_topic,
    rpc_requests_topic,
    rpc_responses_topic,
    schemas_topic,
    sessions_topic,
    spec_by_name,
    stats_topic,
    topic_for,
)
from robostream.topics.drift import Drift, TopicState

__all__ = [
    "MEDIA_TYPES",
    "ROBOT_KEY",
    "CreateReport",
    "CreateResult",
    "CreateStatus",
    "Drift",
    "ListedTopic",
    "StatsResolution",
    "TopicAdminError",
    "TopicKind",
    "TopicSpec",
    "TopicState",
    "admin_client",
    "bucketed_telemetry_topic",
    "catalogue",
    "create_topics",
    "data_type_of",
    "describe",
    "dlq_topic",
    "frames_topic",
    "list_topics",
    "rpc_requests_topic",
    "rpc_responses_topic",
    "schemas_topic",
    "sessions_topic",
    "spec_by_name",
    "stats_topic",
    "topic_for",
]
