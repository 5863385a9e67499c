"""The topic catalogue: names, layout and configs, without a broker."""

from __future__ import annotations

import pytest

from robostream.config import KafkaSettings, SchemaRegistrySettings, Settings, TopicSettings
from robostream.schemas.datatypes import DataType
from robostream.topics import (
    MEDIA_TYPES,
    ROBOT_KEY,
    StatsResolution,
    TopicKind,
    bucketed_telemetry_topic,
    catalogue,
    data_type_of,
    dlq_topic,
    frames_topic,
    rpc_requests_topic,
    rpc_responses_topic,
    sessions_topic,
    spec_by_name,
    stats_topic,
    topic_for,
)
from robostream.topics.catalog import HOUR_MS, min_insync_replicas, segment_ms


def make_settings(prefix: str = "fleet", replication_factor: int = 1) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:9092", replication_factor=replication_factor),
        schema_registry=SchemaRegistrySettings(topic="_fleet_schemas"),
        topics=TopicSettings(prefix=prefix, partitions=12, retention_hours=48,
                             media_retention_hours=6, max_message_bytes=4 * 1024 * 1024),
    )


@pytest.fixture
def settings() -> Settings:
    return make_settings()


def test_every_data_type_has_its_own_topic(settings: Settings) -> None:
    names = {spec.name for spec in catalogue(settings)}
    for data_type in DataType:
        assert topic_for(data_type, settings) == f"fleet.{data_type.value}"
        assert topic_for(data_type, settings) in names


def test_topic_names_are_unique(settings: Settings) -> None:
    names = [spec.name for spec in catalogue(settings)]
    assert len(names) == len(set(names))


def test_catalogue_holds_control_derived_and_registry_topics(settings: Settings) -> None:
    names = set(spec_by_name(settings))
    assert {
        "fleet.rpc.requests", "fleet.rpc.responses", "fleet.sessions", "fleet.dlq",
        "fleet.derived.telemetry_bucketed", "fleet.derived.stats_1s", "fleet.derived.stats_1m",
        "fleet.derived.stats_1h", "fleet.derived.frames", "_fleet_schemas",
    } <= names
    assert len(names) == len(DataType) + 4 + 5 + 1


def test_prefix_is_honoured_everywhere(settings: Settings) -> None:
    other = make_settings(prefix="lab_b")
    for spec in catalogue(other):
        if spec.kind is not TopicKind.INFRASTRUCTURE:
            assert spec.name.startswith("lab_b.")
    assert not any(spec.name.startswith("robot.") for spec in catalogue(settings))


def test_name_helpers_accept_settings_topic_settings_or_prefix(settings: Settings) -> None:
    assert dlq_topic(settings) == dlq_topic(settings.topics) == dlq_topic("fleet") == "fleet.dlq"
    assert rpc_requests_topic("fleet") == "fleet.rpc.requests"
    assert rpc_responses_topic("fleet") == "fleet.rpc.responses"
    assert sessions_topic("fleet") == "fleet.sessions"
    assert bucketed_telemetry_topic("fleet") == "fleet.derived.telemetry_bucketed"
    assert stats_topic("1m", "fleet") == stats_topic(StatsResolution.MINUTE, settings)
    assert frames_topic("fleet") == "fleet.derived.frames"
    with pytest.raises(ValueError):
        stats_topic("5m", "fleet")


def test_data_type_of_reverses_topic_for(settings: Settings) -> None:
    for data_type in DataType:
        assert data_type_of(topic_for(data_type, settings), settings) is data_type
    assert data_type_of("fleet.dlq", settings) is None
    assert data_type_of("robot.images", settings) is None


def test_media_topics_keep_media_retention_others_keep_data_retention(settings: Settings) -> None:
    specs = spec_by_name(settings)
    for data_type in DataType:
        spec = specs[topic_for(data_type, settings)]
        hours = 6 if data_type in MEDIA_TYPES else 48
        assert spec.retention_ms == hours * HOUR_MS
        assert spec.kind is (TopicKind.MEDIA if data_type in MEDIA_TYPES else TopicKind.DATA)
    assert {DataType.IMAGES, DataType.VIDEO, DataType.AUDIO} <= MEDIA_TYPES
    assert DataType.TIME_SERIES not in MEDIA_TYPES


def test_dlq_keeps_records_longer_than_any_data_topic(settings: Settings) -> None:
    specs = catalogue(settings)
    dlq = spec_by_name(settings)["fleet.dlq"]
    longest = max(s.retention_ms or 0 for s in specs if s.kind is not TopicKind.DLQ)
    assert dlq.retention_ms is not None and dlq.retention_ms > longest
    assert dlq.retention_ms >= 30 * 24 * HOUR_MS
    assert "original" in dlq.key
    assert int(dlq.configs["max.message.bytes"]) > settings.topics.max_message_bytes


def test_sessions_and_schema_topics_are_compacted(settings: Settings) -> None:
    specs = spec_by_name(settings)
    assert specs["fleet.sessions"].cleanup_policy == "compact"
    assert specs["fleet.sessions"].retention_ms is None
    schemas = specs["_fleet_schemas"]
    assert (schemas.cleanup_policy, schemas.partitions) == ("compact", 1)


def test_robot_topics_are_keyed_per_session_with_configured_layout(settings: Settings) -> None:
    for spec in catalogue(settings):
        if spec.kind in (TopicKind.DATA, TopicKind.MEDIA, TopicKind.RPC, TopicKind.SESSIONS,
                         TopicKind.DERIVED):
            assert spec.key == ROBOT_KEY
        if spec.kind is not TopicKind.INFRASTRUCTURE:
            assert spec.partitions == 12
            assert spec.configs["compression.type"] == "producer"
        assert spec.purpose


def test_max_message_bytes_comes_from_settings(settings: Settings) -> None:
    for spec in catalogue(settings):
        if spec.kind not in (TopicKind.DLQ, TopicKind.INFRASTRUCTURE):
            assert spec.configs["max.message.bytes"] == str(4 * 1024 * 1024)


@pytest.mark.parametrize(("rf", "isr"), [(1, 1), (2, 1), (3, 2), (4, 3), (5, 3)])
def test_min_insync_replicas_follows_replication_factor(rf: int, isr: int) -> None:
    assert min_insync_replicas(rf) == isr
    for spec in catalogue(make_settings(replication_factor=rf)):
        assert spec.replication_factor == rf
        assert spec.configs["min.insync.replicas"] == str(isr)


def test_segments_roll_well_within_the_retention() -> None:
    assert segment_ms(6 * HOUR_MS) == HOUR_MS + HOUR_MS // 2
    assert segment_ms(168 * HOUR_MS) == 24 * HOUR_MS
    assert segment_ms(HOUR_MS) == HOUR_MS
