"""Bad input gets a clear error, never kills the connection, and lands on the DLQ with the reason."""

from __future__ import annotations

import asyncio
import base64
import math
import os
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import orjson
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, DataType, build_envelope, decode_record
from robostream.schemas.examples import time_series_payload
from robostream.schemas.packed import pack_time_series
from robostream.topics import dlq_topic, topic_for

from .clients import (
    ROBOTS,
    ClosedError,
    WsRobot,
    envelopes,
    headers_of,
    http_ingest,
    read_topics,
    session,
    value_of,
    with_session,
)
from .conftest import RunningGateway

MAX_FRAME = 256 * 1024


@pytest.fixture(scope="module")
def limited(gw_settings: Settings) -> Settings:
    """Small limits, so the tests can reach them."""
    gateway = gw_settings.gateway.model_copy(
        update={"max_frame_bytes": MAX_FRAME, "max_batch_messages": 100, "max_connections_per_robot": 2}
    )
    return gw_settings.model_copy(update={"gateway": gateway})


@pytest.fixture(scope="module")
def gateway(limited: Settings) -> Iterator[RunningGateway]:
    running = RunningGateway(limited)
    yield running
    running.stop()


def raw(data_type: str, seq: int, session_id: str, payload: Any, robot_id: str = "robot_a") -> dict[str, Any]:
    return {
        "timestamp": time.time(),
        "robot_id": robot_id,
        "session_id": session_id,
        "data_type": data_type,
        "seq": seq,
        "payload": payload,
    }


def dead_letters(settings: Settings, count: int, match: Any) -> dict[str, Any]:
    """The DLQ records ``match`` accepts, by ``__error.code`` (waits for ``count`` of them)."""
    records = read_topics(
        settings.kafka.bootstrap, dlq_topic(settings), lambda got: sum(1 for m in got if match(m)) >= count
    )
    return {headers_of(m)["__error.code"]: m for m in records if match(m)}


def closed_with(
    robot_url: str, token: str | None, client_ssl: ssl.SSLContext, **kwargs: Any
) -> tuple[int, str]:
    robot = WsRobot(robot_url, token, client_ssl, **kwargs)
    try:
        with pytest.raises(ClosedError) as closed:
            robot.recv(timeout=10)
    finally:
        robot.close()
    assert closed.value.code is not None
    return closed.value.code, closed.value.reason


def test_bad_token_closes_the_websocket_with_4401_and_a_reason(
    gateway: RunningGateway, client_ssl: ssl.SSLContext
) -> None:
    assert closed_with(gateway.ws_url, "not-a-token", client_ssl) == (4401, "invalid token")
    assert closed_with(gateway.ws_url, None, client_ssl) == (
        4401,
        "missing token: send 'Authorization: Bearer <token>'",
    )
    assert closed_with(gateway.ws_url, ROBOTS["robot_a"], client_ssl, headers={"X-Robot-Id": "robot_b"}) == (
        4401,
        "invalid token for robot robot_b",
    )


def test_bad_token_gets_http_401(gateway: RunningGateway, client_ssl: ssl.SSLContext) -> None:
    status, messages, headers = asyncio.run(http_ingest(gateway.url, "nope", [b"[]"], "json", client_ssl))
    assert status == 401
    assert messages == [{"type": "error", "code": "unauthorized", "message": "invalid token"}]
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_bad_envelopes_are_nacked_dead_lettered_and_the_good_ones_land(
    gateway: RunningGateway, limited: Settings, client_ssl: ssl.SSLContext
) -> None:
    session_id = session()
    good = [e.to_wire() for e in envelopes("robot_a", session_id, [DataType.LOG, DataType.JSON], first_seq=0)]
    other_robot = build_envelope(
        DataType.LOG, good[0]["payload"], robot_id="robot_b", session_id=session_id, seq=1
    ).to_wire()
    unknown_type = raw("smell", 2, session_id, {})
    wrong_schema = raw("log", 3, session_id, {"level": "warning", "logger": "x", "message": 42})
    good[1]["seq"] = 4
    batch = [good[0], other_robot, unknown_type, wrong_schema, good[1]]

    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    try:
        robot.send(msgpack.packb(batch))
        ack, nacks = robot.ack()
        robot.send(b"\xc1 not msgpack")  # malformed MessagePack
        frame_ack, frame_nacks = robot.ack()
        robot.send(msgpack.packb([good[0]] * 101))  # too many envelopes in one batch
        _big_ack, big_nacks = robot.ack()
        oversized = msgpack.packb([raw("log", 9, session_id, {"message": "x" * (MAX_FRAME + 10)})])
        robot.send(oversized)
        over_ack, over_nacks = robot.ack()
        robot.send_batch(envelopes("robot_a", session_id, [DataType.LOG], first_seq=10))  # still open
        last_ack, last_nacks = robot.ack()
    finally:
        robot.close()

    assert ack == {"type": "ack", "batch": 1, "seq": 4, "count": 2, "rejected": 3}
    assert [(n["index"], n["seq"], n["code"], n["retriable"], n["dlq"]) for n in nacks] == [
        (1, 1, "forbidden_robot_id", False, True),
        (2, None, "unknown_data_type", False, True),
        (3, 3, "invalid_field", False, True),
    ]
    assert "may not write robot_id robot_b" in nacks[0]["message"]
    assert nacks[2]["path"] == "payload.message"
    assert (frame_ack["count"], frame_nacks[0]["code"], frame_nacks[0]["index"]) == (
        0,
        "malformed_frame",
        None,
    )
    assert big_nacks[0]["code"] == "too_large" and "at most 100" in big_nacks[0]["message"]
    assert (
        over_nacks[0]["code"] == "too_large" and "exceeds gateway.max_frame_bytes" in over_nacks[0]["message"]
    )
    assert (over_ack["batch"], last_ack["batch"], last_ack["seq"], last_nacks) == (4, 5, 10, [])

    envelope_dlq = dead_letters(
        limited,
        3,
        lambda m: m.key() == f"robot_a/{session_id}".encode() or m.key() == f"robot_b/{session_id}".encode(),
    )
    forbidden = envelope_dlq["forbidden_robot_id"]
    assert msgpack.unpackb(forbidden.value()) == other_robot
    assert headers_of(forbidden)["__error.robot_id"] == "robot_a"
    assert headers_of(forbidden)["__error.source"] == "gateway.ws"
    assert msgpack.unpackb(envelope_dlq["unknown_data_type"].value()) == unknown_type
    wrong = headers_of(envelope_dlq["invalid_field"])
    assert (wrong["__error.data_type"], wrong["__error.path"], wrong["__error.seq"]) == (
        "log",
        "payload.message",
        "3",
    )
    assert wrong["__error.message"] == nacks[2]["message"]

    frames = dead_letters(limited, 3, lambda m: m.key() == b"robot_a")
    assert frames["malformed_frame"].value() == b"\xc1 not msgpack"
    too_large = [
        m
        for m in read_topics(limited.kafka.bootstrap, dlq_topic(limited), lambda got: False, timeout=2)
        if m.key() == b"robot_a" and headers_of(m)["__error.code"] == "too_large"
    ]
    sizes = sorted(int(headers_of(m)["__error.original_size"]) for m in too_large)
    assert sizes[-1] == len(oversized)
    assert any(headers_of(m).get("__error.truncated") == "true" for m in too_large)


def test_http_stream_survives_bad_lines(
    gateway: RunningGateway, limited: Settings, client_ssl: ssl.SSLContext
) -> None:
    session_id = session()
    good = envelopes("robot_b", session_id, [DataType.LOG, DataType.CSV])
    frames = [
        b'{"not json',
        orjson.dumps([raw("log", 5, session_id, {"level": "warning"}, robot_id="robot_b")]),
        b"[" + b" " * (MAX_FRAME + 1) + b"]",
        orjson.dumps([e.to_wire() for e in good]),
    ]
    status, messages, _ = asyncio.run(http_ingest(gateway.url, ROBOTS["robot_b"], frames, "json", client_ssl))

    assert status == 200
    acks = [m for m in messages if m["type"] == "ack"]
    nacks = [m for m in messages if m["type"] == "nack"]
    assert [a["batch"] for a in acks] == [1, 2, 3, 4]
    assert [(n["batch"], n["code"]) for n in nacks] == [
        (1, "malformed_frame"),
        (2, "missing_field"),
        (3, "too_large"),
    ]
    assert acks[-1] == {"type": "ack", "batch": 4, "seq": 1, "count": 2, "rejected": 0}
    letters = dead_letters(limited, 1, lambda m: m.key() == f"robot_b/{session_id}".encode())
    assert headers_of(letters["missing_field"])["__error.source"] == "gateway.http"
    assert headers_of(letters["missing_field"])["__error.content_type"] == "application/json"


def test_connections_per_robot_are_limited(gateway: RunningGateway, client_ssl: ssl.SSLContext) -> None:
    first = WsRobot(gateway.ws_url, ROBOTS["robot_c"], client_ssl)
    second = WsRobot(gateway.ws_url, ROBOTS["robot_c"], client_ssl)
    try:
        code, reason = closed_with(gateway.ws_url, ROBOTS["robot_c"], client_ssl)
        assert code == 4429 and "robot_c already has 2 open connections" in reason
        status, messages, headers = asyncio.run(
            http_ingest(gateway.url, ROBOTS["robot_c"], [b"[]"], "json", client_ssl)
        )
        assert status == 429 and messages[0]["code"] == "too_many_connections"
        assert int(headers["Retry-After"]) >= 1
    finally:
        first.close()
        second.close()


def test_unknown_message_types_get_an_error_and_the_connection_stays(
    gateway: RunningGateway, client_ssl: ssl.SSLContext
) -> None:
    robot = WsRobot(gateway.ws_url, ROBOTS["robot_c"], client_ssl, fmt="json")
    try:
        robot.send('{"type": "hello"}')
        error = robot.recv()
        robot.send_batch(envelopes("robot_c", session(), [DataType.TOML]))
        ack, _ = robot.ack()
    finally:
        robot.close()
    assert (error["type"], error["code"]) == ("error", "unknown_message_type")
    assert (ack["batch"], ack["count"]) == (1, 1)


def test_idle_connections_are_closed_with_a_reason(limited: Settings, client_ssl: ssl.SSLContext) -> None:
    idle = limited.model_copy(update={"gateway": limited.gateway.model_copy(update={"idle_timeout_s": 0.5})})
    running = RunningGateway(idle)
    try:
        robot = WsRobot(running.ws_url, ROBOTS["robot_a"], client_ssl)
        try:
            error = robot.recv(timeout=10)
            with pytest.raises(ClosedError) as closed:
                robot.recv(timeout=10)
        finally:
            robot.close()
    finally:
        running.stop()
    assert error["code"] == "idle_timeout"
    assert closed.value.code == 4408


def test_packed_time_series_columns_land_like_lists_and_bad_ones_are_nacked_and_dead_lettered(
    gateway: RunningGateway, limited: Settings, client_ssl: ssl.SSLContext
) -> None:
    session_id = session()
    payload = time_series_payload(10)
    as_lists = raw("time_series", 0, session_id, payload)
    good = raw("time_series", 1, session_id, pack_time_series(payload))
    truncated = raw("time_series", 2, session_id, pack_time_series(payload))
    truncated["payload"]["pose"]["position"]["x"] = truncated["payload"]["pose"]["position"]["x"][:-1]
    infinite = raw("time_series", 3, session_id, pack_time_series(payload))
    infinite["payload"]["metrics"]["cpu_percent"] = struct.pack("<10d", *([1.0] * 9 + [math.inf]))
    float32 = raw("time_series", 4, session_id, pack_time_series(payload))
    float32["payload"]["channels"]["gripper_width"] = struct.pack("<10f", *range(10))

    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    try:
        robot.send(msgpack.packb([as_lists, good, truncated, infinite, float32], use_bin_type=True))
        ack, nacks = robot.ack()
    finally:
        robot.close()

    assert (ack["count"], ack["seq"]) == (2, 1)
    assert [(n["index"], n["code"], n["path"], n["dlq"]) for n in nacks] == [
        (2, "invalid_field", "payload.pose.position.x", True),
        (3, "non_finite", "payload.metrics.cpu_percent[9]", True),
        (4, "invalid_field", "payload.channels.gripper_width", True),
    ]
    assert "float32" in nacks[2]["message"]
    landed = read_topics(limited.kafka.bootstrap, topic_for(DataType.TIME_SERIES, limited),
                         lambda got: sum(1 for m in got if with_session(session_id)(m)) >= 2)
    values = {headers_of(m)["seq"]: value_of(m) for m in landed if with_session(session_id)(m)}
    resolver = ConfluentSchemaResolver(limited.schema_registry.url)
    from_lists, from_packed = (decode_record(values[seq], resolver) for seq in ("0", "1"))
    assert from_packed.payload == from_lists.payload == build_envelope(
        DataType.TIME_SERIES, payload, robot_id="robot_a", session_id=session_id, seq=0).payload
    dead = dead_letters(limited, 3, lambda m: m.key() == f"robot_a/{session_id}".encode())
    assert msgpack.unpackb(dead["non_finite"].value()) == infinite  # the robot's bytes, as sent
    assert set(dead) == {"invalid_field", "non_finite"}


def set_topic_max_bytes(settings: Settings, topic: str, max_bytes: int) -> None:
    """Alter one topic's ``max.message.bytes`` (what the broker takes in one record batch)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    change = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", str(max_bytes),
                    incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([change]).values():
        future.result(timeout=30)
    # the controller has it; wait until the broker that leads the topic serves it too
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
        configs = next(iter(described.values())).result(timeout=30)
        if configs["max.message.bytes"].value == str(max_bytes):
            return
        time.sleep(0.1)
    raise AssertionError(f"{topic}: max.message.bytes is not {max_bytes} after 30 s")


def test_a_record_the_broker_refuses_as_too_large_is_nacked_retriable_and_lands_once_when_resent(
    gateway: RunningGateway, limited: Settings, client_ssl: ssl.SSLContext
) -> None:
    """The gateway's own size limit lets the record through, but the topic was set smaller by an
    operator: Kafka refuses it, the robot gets a retriable ``kafka_error`` nack (no ack, nothing
    on the DLQ, it keeps the envelope) and the same envelope lands once the topic takes it."""
    session_id = session()
    topic = topic_for(DataType.LOG, limited)
    noise = base64.b64encode(os.urandom(60_000)).decode()  # 80 KB that no codec shrinks below 16 KB
    envelope = raw("log", 0, session_id, {"level": "info", "logger": "camera", "message": noise})
    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    try:
        set_topic_max_bytes(limited, topic, 16 * 1024)
        try:
            robot.send(msgpack.packb([envelope]))
            refused_ack, refused = robot.ack()
        finally:
            set_topic_max_bytes(limited, topic, limited.topics.max_message_bytes)
        robot.send(msgpack.packb([envelope]))
        ack, nacks = robot.ack()
    finally:
        robot.close()

    assert (refused_ack["count"], refused_ack["rejected"]) == (0, 1)
    assert [(n["code"], n["retriable"], n["dlq"]) for n in refused] == [("kafka_error", True, False)]
    assert "MSG_SIZE_TOO_LARGE" in refused[0]["message"], refused[0]
    assert ((ack["count"], ack["seq"]), nacks) == ((1, 0), [])
    landed = [m for m in read_topics(limited.kafka.bootstrap, topic, lambda got: False, timeout=3)
              if with_session(session_id)(m)]
    resolver = ConfluentSchemaResolver(limited.schema_registry.url)
    assert [decode_record(value_of(m), resolver).payload["message"] for m in landed] == [noise]
    assert not [m for m in read_topics(limited.kafka.bootstrap, dlq_topic(limited), lambda got: False,
                                       timeout=2) if m.key() == f"robot_a/{session_id}".encode()]
