"""What a replay or export reads: one session, some types, a window of envelope timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from robostream.replay import Bound, PartitionRange, SessionQuery, default_replay_session
from robostream.schemas import DataType

T0 = datetime(2024, 6, 10, 12, tzinfo=UTC)
T0_US = 1_718_020_800_000_000


def test_the_key_is_robot_slash_session() -> None:
    assert SessionQuery("robot_001", "s1").key == b"robot_001/s1"
    assert SessionQuery("robot_001", "s1").types == tuple(DataType)


def test_ids_are_checked_before_they_reach_kafka() -> None:
    with pytest.raises(ValueError, match="invalid session_id"):
        SessionQuery("robot_001", "../etc")
    with pytest.raises(ValueError, match="at least one data type"):
        SessionQuery("robot_001", "s1", ())


def test_the_window_is_half_open_on_envelope_timestamps() -> None:
    query = SessionQuery("r", "s", start=Bound.at_time(T0), end=Bound.at_time(T0 + timedelta(seconds=1)))
    assert query.in_window(T0_US) and query.in_window(T0_US + 999_999)
    assert not query.in_window(T0_US - 1) and not query.in_window(T0_US + 1_000_000)


def test_offset_bounds_do_not_filter_timestamps() -> None:
    query = SessionQuery("r", "s", start=Bound.at_offset(10), end=Bound.at_offset(20))
    assert query.in_window(0) and query.in_window(T0_US)


def test_an_empty_range_has_size_zero() -> None:
    assert PartitionRange("robot.log", 0, 10, 4).size == 0
    assert PartitionRange("robot.log", 0, 4, 10).size == 6


def test_the_gateway_replay_session_stays_a_valid_id() -> None:
    assert default_replay_session("s-20240610") == "s-20240610-replay"
    assert len(default_replay_session("x" * 64)) == 64
