"""Query parameters are checked before anything reaches a store."""

from __future__ import annotations

import pytest

from robostream.api.errors import ApiError
from robostream.api.params import (
    id_param,
    int_param,
    list_param,
    metric_name,
    micros_to_iso,
    parse_time_us,
    time_range,
)


@pytest.mark.parametrize(("text", "micros"), [
    ("2026-11-25T10:00:00Z", 1_795_600_800_000_000),
    ("2026-11-25T11:00:00+01:00", 1_795_600_800_000_000),
    ("2026-11-25T10:00:00.000123z", 1_795_600_800_000_123),
    ("1795600800", 1_795_600_800_000_000),
    ("1795600800.5", 1_795_600_800_500_000),
    ("0", 0),
])
def test_times_are_iso_with_offset_or_epoch_seconds(text: str, micros: int) -> None:
    assert parse_time_us(text, "from") == micros


@pytest.mark.parametrize("text", ["2026-11-25T10:00:00", "yesterday", "nan", "inf", "-1", "1e12",
                                  "", "2026-13-01T00:00:00Z"])
def test_other_times_are_a_400(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_time_us(text, "from")
    assert (caught.value.status, caught.value.code) == (400, "invalid_time")
    assert "from=" in caught.value.message


def test_a_range_must_not_end_before_it_starts() -> None:
    assert time_range({"from": "10", "to": "20"}) == (10_000_000, 20_000_000)
    assert time_range({}) == (None, None)
    with pytest.raises(ApiError, match="must not be after"):
        time_range({"from": "20", "to": "10"})


@pytest.mark.parametrize("value", ["..", "a/b", "robot:1", "-lead", "x" * 65, "a..b", "caf\u00e9", "a b"])
def test_unsafe_ids_never_pass(value: str) -> None:
    with pytest.raises(ApiError) as caught:
        id_param({"robot": value}, "robot")
    assert caught.value.code == "invalid_id"


def test_ids_missing_or_optional() -> None:
    assert id_param({"robot": "robot_001"}, "robot") == "robot_001"
    assert id_param({}, "camera", optional=True) is None
    with pytest.raises(ApiError) as caught:
        id_param({}, "robot")
    assert caught.value.code == "missing_parameter"


@pytest.mark.parametrize("value", ["pose", "pose.position.x", "joints.angle.3", "_x"])
def test_metric_names_and_prefixes(value: str) -> None:
    assert metric_name(value) == value


@pytest.mark.parametrize("value", ["pose..x", "pose.", "3d", "pose/x", "pose x", "$where"])
def test_bad_metric_names(value: str) -> None:
    with pytest.raises(ApiError) as caught:
        metric_name(value)
    assert caught.value.code == "invalid_metric"


def test_integers_lists_and_iso_output() -> None:
    assert int_param({"n": "5"}, "n", None, high=10) == 5
    assert int_param({}, "n", 7) == 7
    for bad in ("0", "11", "x", "1.5"):
        with pytest.raises(ApiError):
            int_param({"n": bad}, "n", None, high=10)
    assert list_param({"f": "pose, joints,,pose"}, "f") == ["pose", "joints"]
    assert micros_to_iso(1_795_600_800_000_123) == "2026-11-25T10:00:00.000123Z"
