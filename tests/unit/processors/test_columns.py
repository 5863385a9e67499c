"""time_series values -> columns: the fast reader agrees with the generic decoder."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robostream.processors.columns import TimeSeriesReader, unit_of
from robostream.schemas import InMemorySchemaResolver, ValidationError, build_envelope, encode_record
from robostream.schemas.examples import time_series_payload

RESOLVER = InMemorySchemaResolver()


def _value(payload: dict[str, Any], seq: int = 1, ts: float = 1.8e9) -> bytes:
    envelope = build_envelope("time_series", payload, robot_id="robot_1", session_id="s1", seq=seq,
                              timestamp=ts)
    return encode_record(envelope, RESOLVER).value


def _same(reader: TimeSeriesReader, value: bytes) -> None:
    fast = reader.read(value)
    slow = reader._slow(value)
    assert fast.names == slow.names
    assert np.array_equal(fast.values, slow.values, equal_nan=True)
    assert np.array_equal(fast.times, slow.times)
    assert (fast.seq, fast.robot_id, fast.session_id, fast.joint_names, fast.units) == (
        slow.seq, slow.robot_id, slow.session_id, slow.joint_names, slow.units)


def test_every_channel_group_becomes_named_columns() -> None:
    reader = TimeSeriesReader(RESOLVER)
    columns = reader.read(_value(time_series_payload(10)))
    assert columns.values.shape == (len(columns.names), 10)
    assert columns.names[:3] == ("pose.position.x", "pose.position.y", "pose.position.z")
    assert "joints.angle.6" in columns.names and "joints.torque.0" in columns.names
    assert "metrics.network_latency_ms" in columns.names and "channels.gripper_width" in columns.names
    assert columns.times[1] - columns.times[0] == 10_000
    assert unit_of("joints.torque.3") == "N·m" and unit_of("channels.gripper_width", columns.units) == "m"


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    base = time_series_payload(n)
    for group in ("pose", "joints", "force_torque", "imu", "metrics"):
        if draw(st.booleans()):
            base[group] = None
    if base["imu"] is not None and draw(st.booleans()):
        base["imu"]["orientation"] = {k: [0.5] * n for k in "xyzw"}
    if base["joints"] is not None and draw(st.booleans()):
        base["joints"]["velocity"] = []
    if draw(st.booleans()):
        base["channels"], base["units"] = {}, {}
    base["t"] = sorted(draw(st.lists(st.integers(0, 10**7), min_size=n, max_size=n)))
    if base["pose"] is not None:
        base["pose"]["position"]["x"] = draw(st.lists(
            st.floats(allow_infinity=False, allow_nan=True, width=64), min_size=n, max_size=n))
    return base


@settings(max_examples=60, deadline=None)
@given(payloads(), st.integers(0, 2**40))
def test_fast_reader_equals_generic_decoder(payload: dict[str, Any], seq: int) -> None:
    reader = TimeSeriesReader(RESOLVER)
    value = _value(payload, seq)
    _same(reader, value)
    _same(reader, value)  # second read goes through the learnt layout


def test_layout_cache_sees_changed_values_t_and_shapes() -> None:
    reader = TimeSeriesReader(RESOLVER)
    payload = time_series_payload(10)
    _same(reader, _value(payload))
    payload["pose"]["position"]["x"][4] = 123.25
    _same(reader, _value(payload))
    payload["t"][3] += 7  # jitter: same layout after t
    _same(reader, _value(payload))
    payload["channels"]["extra"] = [1.0] * 10
    payload["units"]["extra"] = "V"
    _same(reader, _value(payload))
    assert math.isclose(reader.read(_value(payload)).values[0, 4], 123.25)


def test_truncated_or_foreign_values_are_validation_errors() -> None:
    reader = TimeSeriesReader(RESOLVER)
    value = _value(time_series_payload(3))
    with pytest.raises(ValidationError):
        reader.read(value[:-40])
    with pytest.raises(ValidationError):
        reader.read(b"\x00\x00\x00\x00")
    payload = {"camera_id": "front", "kind": "rgb", "width": 1, "height": 1,
               "blob": {"format": "jpeg", "content": b"x"}}
    images = encode_record(build_envelope("images", payload, robot_id="r", session_id="s", seq=1),
                           RESOLVER).value
    with pytest.raises(ValidationError):
        reader.read(images)
