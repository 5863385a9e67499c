"""Topic namespaces: the catalogue's data topics under another (dotted) name, e.g. for replays."""

from __future__ import annotations

import pytest

from robostream.config import KafkaSettings, Settings, TopicSettings
from robostream.schemas.datatypes import DataType
from robostream.topics import data_type_of, topic_for
from robostream.topics.catalog import (
    data_topic_specs,
    replay_namespace,
    validate_namespace,
)


@pytest.fixture
def settings() -> Settings:
    return Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:9092"),
                    topics=TopicSettings(prefix="fleet", partitions=3, retention_hours=48,
                                         media_retention_hours=6))


def test_the_replay_namespace_is_replay_dot_prefix(settings: Settings) -> None:
    assert replay_namespace(settings) == "replay.fleet"
    assert topic_for(DataType.LOG, replay_namespace(settings)) == "replay.fleet.log"


def test_data_topics_under_a_namespace_keep_the_catalogue_layout(settings: Settings) -> None:
    live = {s.name: s for s in data_topic_specs(settings)}
    replayed = data_topic_specs(settings, namespace="replay.fleet")
    assert [s.name for s in replayed] == [f"replay.{name}" for name in live]
    for spec in replayed:
        twin = live[spec.name.removeprefix("replay.")]
        assert (spec.kind, spec.partitions, spec.key, dict(spec.configs)) == (
            twin.kind, twin.partitions, twin.key, dict(twin.configs))


def test_data_type_of_understands_dotted_namespaces(settings: Settings) -> None:
    for data_type in DataType:
        assert data_type_of(topic_for(data_type, "replay.fleet"), "replay.fleet") is data_type
    assert data_type_of("replay.fleet.log", settings) is None
    assert data_type_of("fleet.log", "replay.fleet") is None
    assert data_type_of("replay.fleet.derived.frames", "replay.fleet") is None
    assert data_type_of("fleet.images", settings) is DataType.IMAGES


@pytest.mark.parametrize("bad", ["", "Replay.robot", "replay..robot", ".robot", "replay.", "replay-robot",
                                 "replay.9robot", "replay robot"])
def test_a_namespace_is_dotted_lowercase_words(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid topic namespace"):
        validate_namespace(bad)
    with pytest.raises(ValueError, match="invalid topic namespace"):
        data_topic_specs(Settings(), namespace=bad)


def test_valid_namespaces_pass_unchanged() -> None:
    for good in ("robot", "replay.robot", "a.b_c.d9"):
        assert validate_namespace(good) == good
