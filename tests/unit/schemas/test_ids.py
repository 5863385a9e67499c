"""Ids are checked against the strict pattern before anything uses them."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from robostream.schemas import ValidationError, build_envelope, decode_frame
from robostream.schemas.examples import example_payload

BAD_IDS: list[Any] = [
    "",
    "../robot",
    "..",
    "a..b",
    "a/b",
    "/abs",
    "a\\b",
    "a\x00b",
    "robot\n",
    "tab\tbed",
    "a" * 65,
    ".hidden",
    "-dash-first",
    "_under",
    "space here",
    "émile",
    "robot:1",
    7,
    None,
    b"robot",
]
GOOD_IDS = ["robot_001", "a", "A9", "s-2024.06.10", "x" * 64, "0"]


def frame(**changes: Any) -> bytes:
    env = {
        "timestamp": 1718000000,
        "robot_id": "robot_001",
        "session_id": "s1",
        "data_type": "images",
        "seq": 1,
        "payload": example_payload("images"),
    }
    env.update(changes)
    return msgpack.packb(env, use_bin_type=True)


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
@pytest.mark.parametrize("field", ["robot_id", "session_id"])
def test_bad_envelope_ids(field: str, bad: Any) -> None:
    [error] = decode_frame(frame(**{field: bad})).errors
    assert (error.code, error.path, error.data_type) == ("invalid_id", field, "images")
    assert "expected 1-64 characters" in str(error)


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_camera_id(bad: Any) -> None:
    payload = example_payload("images") | {"camera_id": bad}
    with pytest.raises(ValidationError) as caught:
        build_envelope("images", payload, robot_id="r1", session_id="s1", seq=0)
    assert caught.value.code in ("invalid_id", "invalid_field")
    assert caught.value.path == "payload.camera_id"


@pytest.mark.parametrize("good", GOOD_IDS)
def test_good_ids(good: str) -> None:
    batch = decode_frame(
        frame(robot_id=good, session_id=good, payload=example_payload("images") | {"camera_id": good})
    )
    assert batch.errors == []
    assert batch.envelopes[0].key == f"{good}/{good}".encode()
