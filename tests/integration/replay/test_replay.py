"""Replay a recorded session into a topic namespace: same records, same order, scaled timing."""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from datetime import timedelta

import pytest

from robostream.config import Settings
from robostream.replay import Bound, SessionQuery, TopicPublisher, replay
from robostream.replay.replay import REPLAYED_FROM_HEADER
from robostream.schemas import ConfluentSchemaResolver, DataType, Envelope
from robostream.topics import topic_for
from tests.integration.replay.helpers import (
    ROBOT,
    cli,
    cli_env,
    decoded,
    produce,
    read_topics,
    recorded_session,
)

RECORDED_TYPES = [DataType.TIME_SERIES, DataType.LOG, DataType.IMAGES]


@pytest.fixture(scope="module")
def recording(
    rp_settings: Settings, resolver: ConfluentSchemaResolver, tag: str,
) -> dict[str, list[Envelope]]:
    """Two sessions recorded at the same time (interleaved in the same partitions), ~5 s each,
    stamped half a minute ago."""
    start = time.time() - 30
    sessions = {name: recorded_session(name, start) for name in (f"a-{tag}", f"b-{tag}")}
    interleaved = [e for pair in zip(*sessions.values(), strict=True) for e in pair]
    produce(rp_settings, resolver, interleaved)
    return sessions


def by_type(envelopes: list[Envelope]) -> dict[DataType, list[Envelope]]:
    grouped: dict[DataType, list[Envelope]] = defaultdict(list)
    for envelope in envelopes:
        grouped[envelope.data_type].append(envelope)
    return dict(grouped)


def replayed(settings: Settings, resolver: ConfluentSchemaResolver, namespace: str) -> list[Envelope]:
    messages = read_topics(settings, [topic_for(dt, namespace) for dt in RECORDED_TYPES])
    return decoded(messages, resolver)


def test_replay_at_max_yields_the_same_records_in_order_per_session(
    rp_settings: Settings, resolver: ConfluentSchemaResolver, recording: dict[str, list[Envelope]], tag: str,
) -> None:
    session = f"a-{tag}"
    namespace = f"replay.rp{tag}"
    publisher = TopicPublisher(rp_settings, namespace, tuple(DataType), resolver)
    report = replay(rp_settings, SessionQuery(ROBOT, session), publisher, resolver, speed=None)

    original = recording[session]
    assert report.records == len(original) == 58
    assert report.per_type == {"time_series": 50, "log": 5, "images": 3}
    messages = read_topics(rp_settings, [topic_for(dt, namespace) for dt in RECORDED_TYPES])
    copies = decoded(messages, resolver)
    assert by_type(copies) == by_type(original)  # same envelopes, same order per data type
    assert {m.key() for m in messages} == {f"{ROBOT}/{session}".encode()}
    sources = [dict(m.headers())[REPLAYED_FROM_HEADER].decode() for m in messages]
    assert all(s.startswith(f"rp{tag}.") for s in sources) and len(set(sources)) == len(sources)
    assert f"{namespace}.time_series-value" in resolver.client.get_subjects()
    # recorded-time order across data types: the pacer saw non-decreasing timestamps
    assert report.first_timestamp_us == original[0].timestamp_us
    assert report.last_timestamp_us == original[-1].timestamp_us


def test_replay_at_10x_sends_every_record_in_recorded_order_never_early(
    rp_settings: Settings, resolver: ConfluentSchemaResolver, recording: dict[str, list[Envelope]], tag: str,
) -> None:
    """How close to a tenth of the span it takes is a figure of bench/replay.py."""
    session = f"b-{tag}"
    publisher = TopicPublisher(rp_settings, f"replay10.rp{tag}", RECORDED_TYPES, resolver)
    query = SessionQuery(ROBOT, session, tuple(RECORDED_TYPES))
    report = replay(rp_settings, query, publisher, resolver, speed=10.0)

    original = recording[session]
    assert report.records == len(original) == 58
    assert report.span_s == pytest.approx(4.9, abs=0.01)
    # paced: the last record is not sent before its time (a tenth of the recorded span)
    assert report.paced_s >= report.span_s / 10
    messages = read_topics(rp_settings, [topic_for(dt, f"replay10.rp{tag}") for dt in RECORDED_TYPES])
    copies = decoded(messages, resolver)
    assert by_type(copies) == by_type(original)  # every record, same order per data type
    # across data types too: sent in recorded-time order (the producer stamps when it sends)
    sent_order = [e.seq for _, e in sorted(zip(messages, copies, strict=True),
                                           key=lambda pair: (pair[0].timestamp()[1], pair[1].seq))]
    assert sent_order == [e.seq for e in original]


def test_a_time_window_is_found_by_time_and_cut_on_envelope_timestamps(
    rp_settings: Settings, resolver: ConfluentSchemaResolver, recording: dict[str, list[Envelope]], tag: str,
) -> None:
    session = f"a-{tag}"
    original = recording[session]
    first = original[0].timestamp
    window = (Bound.at_time(first + timedelta(seconds=1)), Bound.at_time(first + timedelta(seconds=2)))
    publisher = TopicPublisher(rp_settings, f"replaywin.rp{tag}", RECORDED_TYPES, resolver)
    query = SessionQuery(ROBOT, session, tuple(RECORDED_TYPES), *window)
    report = replay(rp_settings, query, publisher, resolver, speed=None)

    expected = [e for e in original if window[0].time_us <= e.timestamp_us < window[1].time_us]  # type: ignore[operator]
    assert 10 <= len(expected) == report.records
    assert by_type(replayed(rp_settings, resolver, f"replaywin.rp{tag}")) == by_type(expected)


def test_the_replay_command_shows_progress_and_a_summary(
    rp_settings: Settings, recording: dict[str, list[Envelope]], tag: str,
) -> None:
    result = subprocess.run(
        cli("replay_cmd", "--robot", ROBOT, "--session", f"b-{tag}", "--types", "log,images",
            "--speed", "max", "--to-topic", f"replaycli.rp{tag}"),
        env=cli_env(rp_settings), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert f"replayed 8 records of {ROBOT}/b-{tag} to replaycli.rp{tag}.* (images 3, log 5)" in result.stdout
    assert "offsets" in result.stderr  # the progress bar


def test_replaying_into_the_live_topics_is_refused(
    rp_settings: Settings, resolver: ConfluentSchemaResolver,
) -> None:
    from robostream.replay import ReplayError

    with pytest.raises(ReplayError, match="refusing to replay into the live topics"):
        TopicPublisher(rp_settings, rp_settings.topics.prefix, RECORDED_TYPES, resolver)
