"""Drift detection between a catalogue entry and what a broker reports."""

from __future__ import annotations

from types import MappingProxyType

from robostream.topics import Drift, TopicKind, TopicSpec
from robostream.topics.drift import compute_drift

SPEC = TopicSpec(
    name="robot.images",
    kind=TopicKind.MEDIA,
    partitions=6,
    replication_factor=1,
    key="robot_id/session_id",
    purpose="camera frames",
    configs=MappingProxyType({"cleanup.policy": "compact,delete", "retention.ms": "86400000"}),
)


def test_matching_topic_has_no_drift() -> None:
    broker = {"cleanup.policy": "delete,compact", "retention.ms": "86400000", "other": "x"}
    assert compute_drift(SPEC, 6, 1, broker) == []


def test_missing_topic_is_one_drift() -> None:
    assert compute_drift(SPEC, None, None, {}) == [
        Drift("robot.images", "topic", "exists", "missing")
    ]


def test_each_difference_names_setting_expected_and_actual() -> None:
    broker = {"cleanup.policy": "delete"}
    drift = compute_drift(SPEC, 8, 3, broker)
    assert drift == [
        Drift("robot.images", "partitions", "6", "8"),
        Drift("robot.images", "replication.factor", "1", "3"),
        Drift("robot.images", "cleanup.policy", "compact,delete", "delete"),
        Drift("robot.images", "retention.ms", "86400000", "(unset)"),
    ]
    assert str(drift[0]) == "robot.images: partitions expected 6, found 8"
