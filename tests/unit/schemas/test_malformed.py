"""Bad input never crashes a codec: it becomes a ValidationError naming code, type and path."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robostream.schemas import (
    DataType,
    ErrorCode,
    InMemorySchemaResolver,
    ValidationError,
    build_envelope,
    decode_frame,
    decode_record,
    encode_frame,
    encode_record,
    encode_vuer,
)
from robostream.schemas.examples import example_payload

NAN, INF = float("nan"), float("inf")


def envelope(data_type: str = "log", **payload_changes: Any) -> dict[str, Any]:
    payload = example_payload(data_type) if data_type in set(DataType) else {}
    payload.update(payload_changes)
    return {
        "timestamp": 1718000000.25,
        "robot_id": "robot_001",
        "session_id": "s1",
        "data_type": data_type,
        "seq": 7,
        "payload": payload,
    }


def with_(data_type: str, path: str, value: Any) -> dict[str, Any]:
    """An example envelope with the value at dotted ``path`` (``[i]`` for list items) replaced."""
    env = envelope(data_type)
    *parents, last = path.replace("[", ".[").split(".")
    node: Any = env
    for part in parents:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    elif value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return env


_DELETE = object()


def single_error(frame: bytes | str) -> ValidationError:
    batch = decode_frame(frame)
    assert batch.envelopes == []
    assert len(batch.errors) == 1
    return batch.errors[0]


def mp(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def vuer_body(**array: Any) -> bytes:
    body = {"$dtype": "float32", "shape": [2, 3], "bytes": bytes(24)}
    body.update(array)
    return mp({"points": {"vertices": body}})


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown data_type", envelope("telemetry"), "unknown_data_type", "data_type"),
    ("data_type not a string", {**envelope(), "data_type": 3}, "unknown_data_type", "data_type"),
    ("seq is text", {**envelope(), "seq": "7"}, "invalid_field", "seq"),
    ("seq negative", {**envelope(), "seq": -1}, "invalid_field", "seq"),
    ("seq is bool", {**envelope(), "seq": True}, "invalid_field", "seq"),
    ("seq missing", {k: v for k, v in envelope().items() if k != "seq"}, "missing_field", "seq"),
    ("NaN timestamp", {**envelope(), "timestamp": NAN}, "non_finite", "timestamp"),
    ("inf timestamp", {**envelope(), "timestamp": INF}, "non_finite", "timestamp"),
    ("timestamp in ms", {**envelope(), "timestamp": 1718000000250}, "invalid_field", "timestamp"),
    ("naive ISO timestamp", {**envelope(), "timestamp": "2024-06-10T06:13:20"}, "invalid_field", "timestamp"),
    ("timestamp is bool", {**envelope(), "timestamp": True}, "invalid_field", "timestamp"),
    ("unknown envelope field", {**envelope(), "colour": "red"}, "unknown_field", "colour"),
    ("payload missing", {k: v for k, v in envelope().items() if k != "payload"}, "missing_field", "payload"),
    ("payload not a map", {**envelope(), "payload": [1, 2]}, "invalid_field", "payload"),
    ("unknown payload field", envelope("log", colour="red"), "unknown_field", "payload.colour"),
    ("missing payload field", with_("log", "payload.message", _DELETE), "missing_field", "payload.message"),
    ("bad enum", envelope("log", level="loud"), "invalid_field", "payload.level"),
    ("NaN in parameters", envelope("parameters", values={"lr": NAN}), "non_finite", "payload.values.lr"),
    (
        "NaN in nested parameters",
        envelope("parameters", values={"optim": {"lr": NAN}}),
        "non_finite",
        "payload.values.optim.lr",
    ),
    (
        "clashing flattened names",
        envelope("parameters", values={"a": {"b": 1}, "a.b": 2}),
        "invalid_field",
        "payload.values.a.b",
    ),
    (
        "NaN in a parameter list",
        with_("parameters", "payload.values.layers", [1.0, NAN]),
        "non_finite",
        "payload.values.layers[1]",
    ),
    (
        "nested list parameter",
        with_("parameters", "payload.values.layers", [[1]]),
        "invalid_field",
        "payload.values.layers[0]",
    ),
    (
        "inf in time_series",
        with_("time_series", "payload.pose.position.x[1]", INF),
        "non_finite",
        "payload.pose.position.x[1]",
    ),
    (
        "text in time_series",
        with_("time_series", "payload.imu.angular_velocity.z[0]", "0.1"),
        "invalid_field",
        "payload.imu.angular_velocity.z[0]",
    ),
    (
        "bool in time_series",
        with_("time_series", "payload.metrics.cpu_percent[2]", True),
        "invalid_field",
        "payload.metrics.cpu_percent[2]",
    ),
    ("float in t", with_("time_series", "payload.t[3]", 1.5), "invalid_field", "payload.t[3]"),
    ("empty t", with_("time_series", "payload.t", []), "invalid_field", "payload.t"),
    (
        "short column",
        with_("time_series", "payload.pose.position.y", [0.0]),
        "invalid_field",
        "payload.pose.position.y",
    ),
    (
        "short joint row",
        with_("time_series", "payload.joints.torque[4]", [1.0, 2.0]),
        "invalid_field",
        "payload.joints.torque[4]",
    ),
    (
        "bad channel name",
        with_("time_series", "payload.channels", {"bad name": [0.0] * 10}),
        "invalid_field",
        "payload.channels.bad name",
    ),
    (
        "unit of unknown channel",
        with_("time_series", "payload.units", {"nope": "m"}),
        "invalid_field",
        "payload.units.nope",
    ),
    ("NaN fps", with_("video", "payload.fps", NAN), "non_finite", "payload.fps"),
    ("zero fps", with_("video", "payload.fps", 0.0), "invalid_field", "payload.fps"),
    ("negative width", with_("images", "payload.width", -1), "invalid_field", "payload.width"),
    ("int overflow", with_("images", "payload.width", 2**31), "invalid_field", "payload.width"),
    (
        "camera id with slash",
        with_("images", "payload.camera_id", "front/../../etc"),
        "invalid_id",
        "payload.camera_id",
    ),
    (
        "content not bytes",
        with_("images", "payload.blob.content", 12),
        "invalid_field",
        "payload.blob.content",
    ),
    (
        "sha256 mismatch",
        with_("images", "payload.blob.sha256", "0" * 64),
        "checksum_mismatch",
        "payload.blob.sha256",
    ),
    (
        "size mismatch",
        with_("file", "payload.blob.size_bytes", 1),
        "checksum_mismatch",
        "payload.blob.size_bytes",
    ),
    (
        "bad format",
        with_("zip", "payload.blob.format", "zip archive!"),
        "invalid_field",
        "payload.blob.format",
    ),
    (
        "file name with slash",
        with_("file", "payload.name", "../../etc/passwd"),
        "invalid_field",
        "payload.name",
    ),
    (
        "claim-check key escapes",
        with_(
            "tar",
            "payload.blob",
            {
                "format": "tar",
                "size_bytes": 1,
                "sha256": "a" * 64,
                "content": {"bucket": "robostream", "key": "raw/../secret", "size": 1, "sha256": "a" * 64},
            },
        ),
        "invalid_field",
        "payload.blob.content.key",
    ),
    (
        "claim-check size differs",
        with_(
            "tar",
            "payload.blob",
            {
                "format": "tar",
                "size_bytes": 1,
                "sha256": "a" * 64,
                "content": {"bucket": "robostream", "key": "raw/r/s/x.tar", "size": 2, "sha256": "a" * 64},
            },
        ),
        "checksum_mismatch",
        "payload.blob.content.size",
    ),
    (
        "claim-check without checksum",
        with_(
            "tar",
            "payload.blob",
            {
                "format": "tar",
                "content": {"bucket": "robostream", "key": "raw/r/s/x.tar", "size": 2, "sha256": "a" * 64},
            },
        ),
        "missing_field",
        "payload.blob.size_bytes",
    ),
    ("bad JSON document", with_("json", "payload.text", "{not json"), "invalid_field", "payload.text"),
    ("bad TOML document", with_("toml", "payload.text", "= = ="), "invalid_field", "payload.text"),
    ("bad YAML document", with_("yaml", "payload.text", "a: [1, 2"), "invalid_field", "payload.text"),
    ("bad CSV delimiter", with_("csv", "payload.delimiter", ",,"), "invalid_field", "payload.delimiter"),
    (
        "vuer unknown $dtype",
        with_("vuer_msg", "payload.data", vuer_body(**{"$dtype": "float128"})),
        "invalid_dtype",
        "payload.data.points.vertices",
    ),
    (
        "vuer $dtype not a string",
        with_("vuer_msg", "payload.data", vuer_body(**{"$dtype": 4})),
        "invalid_dtype",
        "payload.data.points.vertices",
    ),
    (
        "vuer byte length",
        with_("vuer_msg", "payload.data", vuer_body(bytes=bytes(23))),
        "invalid_dtype",
        "payload.data.points.vertices.bytes",
    ),
    (
        "vuer negative dim",
        with_("vuer_msg", "payload.data", vuer_body(shape=[-2, -3])),
        "invalid_dtype",
        "payload.data.points.vertices",
    ),
    (
        "vuer absurd shape",
        with_("vuer_msg", "payload.data", vuer_body(shape=[2**40, 2**40])),
        "too_large",
        "payload.data.points.vertices",
    ),
    (
        "vuer extra key",
        with_("vuer_msg", "payload.data", vuer_body(order="F")),
        "invalid_dtype",
        "payload.data.points.vertices",
    ),
    ("vuer bytes not msgpack", with_("vuer_msg", "payload.data", b"\xc1"), "invalid_field", "payload.data"),
    (
        "vuer structured bad array",
        with_("vuer_msg", "payload.data", {"a": {"$dtype": "f4", "shape": [1], "bytes": b"1234"}}),
        "invalid_dtype",
        "payload.data.a",
    ),
    ("robot_id traversal", {**envelope(), "robot_id": "../robot"}, "invalid_id", "robot_id"),
    (
        "robot_id missing",
        {k: v for k, v in envelope().items() if k != "robot_id"},
        "missing_field",
        "robot_id",
    ),
    ("session_id not a string", {**envelope(), "session_id": 5}, "invalid_id", "session_id"),
]


@pytest.mark.parametrize(("name", "env", "code", "path"), CASES, ids=[c[0] for c in CASES])
def test_bad_envelope_names_code_and_path(name: str, env: dict[str, Any], code: str, path: str) -> None:
    error = single_error(mp(env))
    assert (error.code, error.path) == (code, path), str(error)
    assert error.index == 0
    assert path in str(error) and code in str(error)
    if env.get("data_type") in set(DataType):
        assert error.data_type == env["data_type"]


def test_error_message_reads_as_a_sentence() -> None:
    error = single_error(mp(with_("time_series", "payload.pose.position.x[1]", "fast")))
    assert str(error) == (
        "envelope #0, data_type 'time_series', field payload.pose.position.x[1]; expected a number; "
        "got 'fast' (str) [invalid_field]"
    )
    assert error.to_dict()["seq"] == 7


def test_json_frames_reject_bad_base64_and_accept_null_as_missing_sample() -> None:
    bad = orjson.dumps(with_("images", "payload.blob", {"format": "jpeg", "content": "not base64!"}))
    error = single_error(bad.decode())
    assert (error.code, error.path) == ("invalid_field", "payload.blob.content")
    missing = with_("time_series", "payload.pose.position.x[0]", None)
    batch = decode_frame(orjson.dumps(missing), "json")
    assert batch.errors == []
    assert (
        batch.envelopes[0].payload["pose"]["position"]["x"][0]
        != batch.envelopes[0].payload["pose"]["position"]["x"][0]
    )


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x93\x01",
        mp([envelope()])[:-3],
        b"\xc1",
        mp(envelope()) + b"\x00",
        mp(5),
        mp("text"),
        mp({1: 2}),
        b"\x82\xa1a\xc7\x00\x05",
        "{",
        "[1, 2",
        "NaN",
        '{"a": NaN}',
        "\ud800",
        "[" * 5000 + "]" * 5000,
        b"\x91" * 5000 + b"\xc0",
    ],
    ids=repr,
)
def test_malformed_frames(frame: bytes | str) -> None:
    try:
        batch = decode_frame(frame)
    except ValidationError as exc:
        assert exc.code in (ErrorCode.MALFORMED_FRAME, ErrorCode.TOO_LARGE)
        assert exc.index is None
    else:  # parsed, but nothing in it is an envelope
        assert batch.envelopes == [] and batch.errors


def test_good_envelopes_survive_bad_neighbours() -> None:
    good = envelope("log")
    frame = mp(
        [good, envelope("telemetry"), {**good, "seq": 8}, "junk", with_("images", "payload.camera_id", "a/b")]
    )
    batch = decode_frame(frame)
    assert [e.seq for e in batch.envelopes] == [7, 8]
    assert [(e.index, e.code) for e in batch.errors] == [
        (1, "unknown_data_type"),
        (3, "invalid_field"),
        (4, "invalid_id"),
    ]


def test_batch_limit() -> None:
    with pytest.raises(ValidationError) as caught:
        decode_frame(mp([envelope()] * 3), max_messages=2)
    assert caught.value.code == "too_large"


# -- Kafka records ------------------------------------------------------------------------------

RESOLVER = InMemorySchemaResolver()
GOOD = encode_record(
    build_envelope("images", example_payload("images"), robot_id="r1", session_id="s1", seq=1), RESOLVER
)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"", "malformed_record"),
        (b"\x00\x00\x00", "malformed_record"),
        (b"\x01" + GOOD.value[1:], "malformed_record"),
        (b"\x00\x00\x00\x03\xe7" + GOOD.value[5:], "unknown_schema"),
        (GOOD.value[:-10], "malformed_record"),
        (GOOD.value[:40], "malformed_record"),
        (GOOD.value + b"\x00", "malformed_record"),
    ],
    ids=["empty", "short", "magic", "unknown id", "truncated tail", "truncated head", "trailing"],
)
def test_bad_record_values(value: bytes, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_record(value, RESOLVER)
    assert caught.value.code == code


def test_record_key_and_header_must_agree() -> None:
    with pytest.raises(ValidationError, match="key"):
        decode_record(GOOD.value, RESOLVER, key=b"r2/s1")
    with pytest.raises(ValidationError, match="header"):
        decode_record(GOOD.value, RESOLVER, headers=[("data_type", b"video")])


def test_record_with_unsafe_id_is_rejected_on_decode() -> None:
    from robostream.schemas import catalog
    from robostream.schemas.codec import _wire_value

    datum = build_envelope("log", example_payload("log"), robot_id="r1", session_id="s1", seq=1).to_avro()
    datum["robot_id"] = "../../etc"
    schema_id = RESOLVER.id_for("robot.log-value", catalog.schema_str("log"))
    value = _wire_value(schema_id, catalog.parsed_schema("log"), datum)
    with pytest.raises(ValidationError) as caught:
        decode_record(value, RESOLVER)
    assert (caught.value.code, caught.value.path) == ("invalid_id", "robot_id")


# -- fuzz: whatever comes, only ValidationError -------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_FRAME = encode_frame(
    [
        build_envelope(dt, example_payload(dt), robot_id="r1", session_id="s1", seq=i)
        for i, dt in enumerate((DataType.TIME_SERIES, DataType.VUER_MSG, DataType.IMAGES))
    ]
)
VALID_RECORD = encode_record(
    build_envelope("time_series", example_payload("time_series"), robot_id="r1", session_id="s1", seq=1),
    RESOLVER,
).value


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_random_frames_only_raise_validation_errors(frame: bytes | str) -> None:
    with contextlib.suppress(ValidationError):
        decode_frame(frame)


@FUZZ
@given(st.data())
def test_mutated_frames_and_records_only_raise_validation_errors(data: st.DataObject) -> None:
    for original, decode in (
        (VALID_FRAME, decode_frame),
        (VALID_RECORD, lambda v: decode_record(v, RESOLVER)),
    ):
        mutated = bytearray(original)
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(mutated) - 1))
            mutated[position] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(mutated)))
        with contextlib.suppress(ValidationError):
            decode(bytes(mutated[:cut]))


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.sampled_from(list(DataType)), json_like)
def test_random_payloads_only_raise_validation_errors(data_type: DataType, payload: Any) -> None:
    env = envelope(str(data_type))
    env["payload"] = payload
    for frame in (mp(env), mp({**env, "payload": {**example_payload(data_type), "x": payload}})):
        batch = decode_frame(frame)
        assert len(batch.envelopes) + len(batch.errors) == 1


@FUZZ
@given(st.sampled_from(list(DataType)), st.data())
def test_example_with_one_field_replaced_only_raises_validation_errors(
    data_type: DataType, data: st.DataObject
) -> None:
    env = envelope(str(data_type))
    node: Any = env["payload"]
    while isinstance(node, dict) and node:
        key = data.draw(st.sampled_from(sorted(node)))
        if not isinstance(node[key], dict) or data.draw(st.booleans()):
            node[key] = data.draw(json_like)
            break
        node = node[key]
    for frame in (mp(env), orjson.dumps(copy.deepcopy(env), default=lambda o: o.hex()).decode()):
        batch = decode_frame(frame)
        assert len(batch.envelopes) + len(batch.errors) == 1


def test_vuer_encoder_rejects_unsupported_arrays() -> None:
    import numpy as np

    with pytest.raises(ValidationError) as caught:
        encode_vuer({"z": np.zeros(2, dtype=np.complex64)})
    assert caught.value.code == "invalid_dtype"
    with pytest.raises(ValidationError):
        encode_vuer({"o": object()})
