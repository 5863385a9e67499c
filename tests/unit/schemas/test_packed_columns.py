"""Packed time_series columns: the same Kafka record as lists, and the contract's errors."""

from __future__ import annotations

import copy
import io
import math
import struct
from typing import Any

import fastavro
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robostream.schemas import (
    DataType,
    DecodedBatch,
    Envelope,
    ValidationError,
    build_envelope,
    catalog,
    decode_frame,
    decode_record,
    encode_record,
    packed,
    parse_into,
)
from robostream.schemas.avro_columns import write_long
from robostream.schemas.avro_tags import tagger_for
from robostream.schemas.examples import time_series_payload
from robostream.schemas.resolver import InMemorySchemaResolver
from tests.unit.schemas.strategies import canon, int64, time_series

RESOLVER = InMemorySchemaResolver()


def _envelope(payload: dict[str, Any], seq: int = 3) -> Any:
    return build_envelope(DataType.TIME_SERIES, payload, robot_id="robot_001", session_id="s1",
                          seq=seq, timestamp=1_764_000_000.25)


def _fastavro_value(envelope: Any) -> bytes:
    """The reference: fastavro's own writer on the list form of the datum."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, catalog.parsed_schema("time_series"),
                               tagger_for("time_series")(envelope.to_avro()))  # type: ignore[misc]
    return buffer.getvalue()


def _body(value: bytes) -> bytes:
    return value[5:]  # after the magic byte and schema id


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(time_series())
def test_column_writer_is_byte_for_byte_fastavro(payload: dict[str, Any]) -> None:
    listed = _envelope(payload)
    record = encode_record(listed, RESOLVER, ingest_time_ms=1)
    assert _body(record.value) == _fastavro_value(listed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(time_series())
def test_packed_and_list_columns_make_the_same_record(payload: dict[str, Any]) -> None:
    from_lists = encode_record(_envelope(payload), RESOLVER, ingest_time_ms=1)
    wire = packed.pack_time_series(payload)
    assert type(wire["t"]) is bytes  # really packed
    frame = msgpack.packb([_envelope(payload).to_wire() | {"payload": wire}], use_bin_type=True)
    batch = decode_frame(frame, "msgpack")
    assert not batch.errors
    from_packed = encode_record(batch.envelopes[0], RESOLVER, ingest_time_ms=1)
    assert from_packed == from_lists
    back = decode_record(from_packed.value, RESOLVER)
    assert canon(back.payload) == canon(_envelope(payload).payload)


@given(st.lists(int64, min_size=1, max_size=20))
def test_packed_sample_times_encode_as_avro_longs(times: list[int]) -> None:
    payload = {"t": times, "channels": {"c": [0.0] * len(times)}}
    listed = encode_record(_envelope(payload), RESOLVER, ingest_time_ms=1)
    packed_env = _envelope(packed.pack_time_series(payload))
    assert encode_record(packed_env, RESOLVER, ingest_time_ms=1) == listed


@pytest.mark.parametrize("value", [0, 1, -1, 63, 64, -64, -65, 2**31, -(2**63), 2**63 - 1])
def test_write_long_matches_fastavro(value: int) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "long", value)
    assert write_long(value) == buffer.getvalue()


def test_numpy_columns_are_packed_by_the_sdk_helper() -> None:
    payload = time_series_payload(10)
    arrays = packed.pack_time_series({
        "t": np.asarray(payload["t"]),
        "pose": {
            "position": {k: np.asarray(v) for k, v in payload["pose"]["position"].items()},
            "orientation": {k: np.asarray(v) for k, v in payload["pose"]["orientation"].items()},
        },
        "joints": {"angle": np.asarray(payload["joints"]["angle"])},
    })
    listed = {"t": payload["t"], "pose": payload["pose"], "joints": {"angle": payload["joints"]["angle"]}}
    assert encode_record(_envelope(arrays), RESOLVER, ingest_time_ms=1) == encode_record(
        _envelope(listed), RESOLVER, ingest_time_ms=1)


def test_nan_in_a_packed_column_is_a_missing_sample() -> None:
    payload = time_series_payload(4)
    payload["metrics"]["cpu_percent"][2] = math.nan
    envelope = _envelope(packed.pack_time_series(payload))
    back = decode_record(encode_record(envelope, RESOLVER).value, RESOLVER)
    assert math.isnan(back.payload["metrics"]["cpu_percent"][2])


# -- malformed packed columns: the contract's codes, like lists ----------------------------------


def _error(payload: dict[str, Any]) -> dict[str, Any]:
    frame = msgpack.packb({"timestamp": 1.0, "robot_id": "r1", "session_id": "s1",
                           "data_type": "time_series", "seq": 0, "payload": payload}, use_bin_type=True)
    batch = decode_frame(frame, "msgpack")
    assert not batch.envelopes
    return batch.errors[0].to_dict()


def _packed_example(n: int = 10) -> dict[str, Any]:
    return packed.pack_time_series(time_series_payload(n))


def test_truncated_packed_column_is_invalid_field() -> None:
    payload = _packed_example()
    payload["pose"]["position"]["y"] = payload["pose"]["position"]["y"][:-3]
    error = _error(payload)
    assert error["code"] == "invalid_field"
    assert error["path"] == "payload.pose.position.y"
    assert "8 bytes per value" in error["expected"] and "77 bytes" in error["got"]


def test_packed_column_of_the_wrong_length_is_invalid_field() -> None:
    payload = _packed_example()
    payload["force_torque"]["torque"]["z"] = struct.pack("<9d", *range(9))
    error = _error(payload)
    assert (error["code"], error["path"]) == ("invalid_field", "payload.force_torque.torque.z")
    assert error["expected"] == "10 values (one per entry of t)" and error["got"].startswith("9 values")


def test_float32_column_is_named_as_the_likely_mistake() -> None:
    payload = _packed_example()
    payload["metrics"]["memory_mb"] = np.arange(10, dtype="<f4").tobytes()
    error = _error(payload)
    assert error["code"] == "invalid_field" and "float32" in error["got"]


def test_infinity_in_a_packed_column_is_non_finite_with_its_index() -> None:
    payload = _packed_example()
    values = np.frombuffer(payload["imu"]["angular_velocity"]["x"], "<f8").copy()
    values[6] = -math.inf
    payload["imu"]["angular_velocity"]["x"] = values.tobytes()
    error = _error(payload)
    assert (error["code"], error["path"]) == ("non_finite", "payload.imu.angular_velocity.x[6]")


def test_infinity_in_a_packed_joint_matrix_names_row_and_joint() -> None:
    payload = _packed_example()
    matrix = np.frombuffer(payload["joints"]["torque"], "<f8").reshape(10, 7).copy()
    matrix[4, 2] = math.inf
    payload["joints"]["torque"] = matrix.tobytes()
    error = _error(payload)
    assert (error["code"], error["path"]) == ("non_finite", "payload.joints.torque[4][2]")


def test_packed_joint_matrix_of_the_wrong_size_is_invalid_field() -> None:
    payload = _packed_example()
    payload["joints"]["velocity"] = payload["joints"]["velocity"][:-8]  # one value short
    error = _error(payload)
    assert (error["code"], error["path"]) == ("invalid_field", "payload.joints.velocity")
    assert error["expected"] == "10 rows x 7 joints = 70 packed values"


def test_packed_sample_times_of_the_wrong_length_are_invalid() -> None:
    payload = _packed_example()
    payload["t"] = payload["t"] + b"\x00"
    error = _error(payload)
    assert (error["code"], error["path"]) == ("invalid_field", "payload.t")


def test_packed_columns_are_refused_outside_time_series_and_in_json() -> None:
    error = _error({"t": b"\x00" * 8, "channels": {"c": "not numbers"}})
    assert (error["code"], error["path"]) == ("invalid_field", "payload.channels.c")
    with pytest.raises(ValidationError) as raised:
        build_envelope(DataType.LOG, {"level": "INFO", "message": "x", "logger": b"\x00" * 8},
                       robot_id="r1", session_id="s1", seq=0, timestamp=1.0)
    assert raised.value.to_dict()["code"] == "invalid_field"
    json_frame = ('{"timestamp": 1.0, "robot_id": "r1", "session_id": "s1", "data_type": "time_series",'
                  ' "seq": 0, "payload": {"t": "AAAAAAAAAAA="}}')
    batch = decode_frame(json_frame, "json")
    assert batch.errors and batch.errors[0].to_dict()["path"] == "payload.t"


def test_a_spooled_msgpack_batch_with_packed_columns_goes_out_as_json_lists() -> None:
    """A spool written in MessagePack mode, sent after a restart in JSON mode."""
    from robostream_sdk.wire import to_json_frame

    payload = time_series_payload(3)
    envelope = _envelope(packed.pack_time_series(payload))
    frame = msgpack.packb([envelope.to_wire()], use_bin_type=True)
    batch = decode_frame(to_json_frame(frame), "json")
    assert not batch.errors
    assert batch.envelopes[0].payload == _envelope(payload).payload


# -- the gateway's one-pass path -----------------------------------------------------------------


def _record(envelope: Envelope) -> Any:
    return encode_record(envelope, RESOLVER, ingest_time_ms=1)


def _one_pass(wire: dict[str, Any]) -> tuple[Any, Any]:
    """(one-pass envelope or error, general-path envelope or error) of one envelope map."""
    frame_item = {"timestamp": 1.5, "robot_id": "r1", "session_id": "s1", "data_type": "time_series",
                  "seq": 9, "payload": wire}
    results = []
    for one_pass in (True, False):
        batch = DecodedBatch([], [])
        parse_into(batch, 0, frame_item, False, one_pass=one_pass)
        results.append(batch.envelopes[0] if batch.envelopes else batch.errors[0].to_dict())
    return results[0], results[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(time_series())
def test_one_pass_writes_the_record_of_the_general_path(payload: dict[str, Any]) -> None:
    fast, general = _one_pass(packed.pack_time_series(payload))
    assert isinstance(fast, Envelope) and isinstance(general, Envelope)
    assert _record(fast) == _record(general)


def _mutations(data: st.DataObject, wire: dict[str, Any]) -> dict[str, Any]:
    """A packed payload with one thing changed: a value replaced, a key added or removed."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, (*path, key))

    walk(wire, ())
    path = data.draw(st.sampled_from(paths[1:]))
    *parents, last = path
    node = wire
    for key in parents:
        node = node[key]
    choice = data.draw(st.sampled_from(["replace", "drop", "add", "cut", "inf"]))
    if choice == "drop":
        del node[last]
    elif choice == "add":
        node[data.draw(st.sampled_from(["extra", "x", "w", "names", "orientation", "units"]))] = b""
    elif choice == "cut" and type(node[last]) is bytes:
        node[last] = node[last][: data.draw(st.integers(0, max(0, len(node[last]) - 1)))]
    elif choice == "inf" and type(node[last]) is bytes and len(node[last]) >= 8:
        node[last] = struct.pack("<d", math.inf) + node[last][8:]
    else:
        node[last] = data.draw(st.sampled_from([None, [], {}, "x", 1.5, b"", b"\x00" * 8, [1.0], True]))
    return wire


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(time_series(), st.data())
def test_one_pass_never_accepts_what_the_general_path_refuses(
    payload: dict[str, Any], data: st.DataObject
) -> None:
    wire = _mutations(data, copy.deepcopy(packed.pack_time_series(payload)))
    fast, general = _one_pass(wire)
    if isinstance(general, dict):  # refused: the one-pass path must give the very same error
        assert fast == general
    else:
        assert isinstance(fast, Envelope)
        assert _record(fast) == _record(general)


def test_the_sdk_shape_takes_the_one_pass_path() -> None:
    fast, _ = _one_pass(packed.pack_time_series(time_series_payload(10)))
    assert fast.avro_payload is not None
    listed, _ = _one_pass(time_series_payload(10))
    assert listed.avro_payload is None  # lists: the general path
