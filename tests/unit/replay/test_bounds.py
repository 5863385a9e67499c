"""Command-line values of replay, export and offsets reset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from robostream.replay import Bound, BoundError, parse_bound, parse_duration, parse_speed, parse_time
from robostream.replay.bounds import parse_types
from robostream.schemas import DataType

NOW = datetime(2026, 6, 10, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("PT10M", timedelta(minutes=10)),
    ("P1DT2H", timedelta(days=1, hours=2)),
    ("PT0.5S", timedelta(seconds=0.5)),
    ("pt1h30m", timedelta(hours=1, minutes=30)),
    ("90s", timedelta(seconds=90)),
    ("10m", timedelta(minutes=10)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("2d", timedelta(days=2)),
    ("500ms", timedelta(milliseconds=500)),
])
def test_durations_in_iso_8601_or_compact_form(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "P", "PT", "10", "ten minutes", "10x", "-5m", "1h 30m"])
def test_a_bad_duration_says_what_is_expected(bad: str) -> None:
    with pytest.raises(BoundError, match="expected ISO-8601"):
        parse_duration(bad)


def test_times_are_utc_and_aware() -> None:
    assert parse_time("2024-06-10T12:00:00Z") == datetime(2024, 6, 10, 12, tzinfo=UTC)
    assert parse_time("2024-06-10T12:00:00") == datetime(2024, 6, 10, 12, tzinfo=UTC)  # naive: UTC
    plus2 = parse_time("2024-06-10T14:00:00+02:00")
    assert plus2 == datetime(2024, 6, 10, 12, tzinfo=UTC) and plus2.tzinfo is UTC
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("-10m", now=NOW) == NOW - timedelta(minutes=10)
    assert parse_time("-PT1H", now=NOW) == NOW - timedelta(hours=1)


def test_a_bad_time_says_what_is_expected() -> None:
    with pytest.raises(BoundError, match="not a time: 'yesterday'"):
        parse_time("yesterday")


def test_bounds_are_offsets_times_or_the_ends() -> None:
    assert parse_bound(None) is None
    assert parse_bound("latest") is None
    assert parse_bound("earliest") == Bound.at_offset(0)
    assert parse_bound("1234") == Bound.at_offset(1234)
    bound = parse_bound("2024-06-10T12:00:00.5Z")
    assert bound is not None and bound.time_us == 1_718_020_800_500_000
    assert parse_bound("-1h", now=NOW) == Bound.at_time(NOW - timedelta(hours=1))


def test_a_bound_is_exactly_one_thing() -> None:
    with pytest.raises(ValueError):
        Bound()
    with pytest.raises(ValueError):
        Bound(time=NOW, offset=1)
    with pytest.raises(ValueError):
        Bound(time=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        Bound(offset=-1)
    assert Bound(time=datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=1)))).time_us is not None


@pytest.mark.parametrize(("text", "speed"), [("1x", 1.0), ("10x", 10.0), ("0.5x", 0.5), ("2", 2.0),
                                             ("max", None), ("MAX", None)])
def test_speeds(text: str, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("bad", ["0x", "fast", "-1x", "x", ""])
def test_a_bad_speed_is_refused(bad: str) -> None:
    with pytest.raises(BoundError, match="not a speed"):
        parse_speed(bad)


def test_types_are_comma_separated_or_repeated_in_catalogue_order() -> None:
    assert parse_types(None) == tuple(DataType)
    assert parse_types(["log,time_series", "images"]) == (DataType.TIME_SERIES, DataType.IMAGES, DataType.LOG)
    with pytest.raises(BoundError, match="unknown data type"):
        parse_types(["telemetry"])
