"""Endpoint URLs, Retry-After, message counting and the session event the client sends."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from robostream.schemas.examples import time_series_payload
from robostream_sdk import CameraConfig, Counters, SessionConfig, SessionStats, ValidationError, messages_in
from robostream_sdk.session import control_message, session_event
from robostream_sdk.transport import endpoint_url, retry_after_seconds
from robostream_sdk.wire import decode_message, to_json_frame


@pytest.mark.parametrize(("base", "kind", "expected"), [
    ("http://127.0.0.1:8080", "ws", "ws://127.0.0.1:8080/v1/stream"),
    ("https://gw.example:443", "ws", "wss://gw.example:443/v1/stream"),
    ("ws://h:1/v1/stream", "https", "http://h:1/v1/ingest"),
    ("wss://h:1", "https", "https://h:1/v1/ingest"),
    ("https://proxy/robots/v1/ingest", "ws", "wss://proxy/robots/v1/stream"),
])
def test_endpoint_urls(base: str, kind: str, expected: str) -> None:
    assert endpoint_url(base, kind) == expected  # type: ignore[arg-type]


def test_a_gateway_url_without_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="expected ws"):
        endpoint_url("127.0.0.1:8080", "ws")


@pytest.mark.parametrize(("value", "seconds"), [("2", 2.0), (" 0.5 ", 0.5), ("", None), (None, None),
                                                ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("-1", None)])
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_a_message_is_a_time_series_row_or_one_envelope() -> None:
    assert messages_in("time_series", time_series_payload(10)) == 10
    assert messages_in("log", {"level": "info"}) == 1


def test_lost_is_what_was_handed_over_and_is_neither_acked_waiting_nor_rejected() -> None:
    counters = Counters(created=100, recovered=20, acked=90, spooled=15, batching=5, rejected=3)
    assert counters.lost == 7
    assert counters.snapshot()["lost"] == 7


def test_json_frames_carry_bytes_as_base64() -> None:
    frame = msgpack.packb([{"payload": {"blob": {"content": b"\x00\x01"}}}], use_bin_type=True)
    assert orjson.loads(to_json_frame(frame)) == [{"payload": {"blob": {"content": "AAE="}}}]


def test_gateway_messages_must_be_maps_with_a_type() -> None:
    assert decode_message(msgpack.packb({"type": "ack", "batch": 1}), "msgpack")["batch"] == 1
    with pytest.raises(ValueError):
        decode_message(msgpack.packb([1, 2]), "msgpack")


def test_session_events_follow_the_session_event_schema() -> None:
    config = SessionConfig(sensors=("pose", "camera:front"), rates_hz={"pose": 100},
                           cameras=(CameraConfig("front", 640, 360, 30.0),), data_types=("time_series",))
    start = session_event("robot_001", "s1", "start", config=config, at=1_718_000_000.5)
    assert start["timestamp"] == 1_718_000_000_500_000
    assert start["config"]["cameras"][0]["camera_id"] == "front"
    stats = SessionStats("s1", started_at=1_718_000_000.0, ended_at=1_718_000_300.0, records=10, bytes=99)
    end = session_event("robot_001", "s1", "end", stats=stats)
    assert end["stats"]["duration_s"] == 300.0 and end["config"] is None
    assert control_message(end) == {"type": "session_event", "event": end}


def test_a_session_config_with_a_bad_camera_id_is_refused() -> None:
    with pytest.raises(ValidationError):
        session_event("robot_001", "s1", "start",
                      config=SessionConfig(cameras=(CameraConfig("../x", 1, 1, 1.0),)))
