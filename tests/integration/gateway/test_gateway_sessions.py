"""Session start/end events from a robot land on the compacted sessions topic, keyed per session."""

from __future__ import annotations

import ssl
import time
from typing import Any

import msgpack

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, decode_value
from robostream.topics import sessions_topic

from .clients import ROBOTS, WsRobot, read_topics, value_of


def _event(robot_id: str, session_id: str, kind: str) -> dict[str, Any]:
    return {"type": "session_event", "event": {
        "timestamp": time.time_ns() // 1000, "robot_id": robot_id, "session_id": session_id,
        "kind": kind, "config": None, "stats": None,
    }}


def test_session_start_is_acked_after_kafka_and_lands_on_the_sessions_topic(
    gateway: Any, gw_settings: Settings, registry_url: str, client_ssl: ssl.SSLContext
) -> None:
    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    try:
        robot.send(msgpack.packb(_event("robot_a", "s-life", "start")))
        ack, _ = robot.until("session_ack")
        robot.send(msgpack.packb(_event("robot_b", "s-life", "start")))  # not this robot's id
        refused, _ = robot.until("error")
    finally:
        robot.close()
    assert ack == {"type": "session_ack", "robot_id": "robot_a", "session_id": "s-life", "kind": "start"}
    assert refused["code"] == "forbidden_robot_id" and refused["message_type"] == "session_event"

    records = read_topics(gw_settings.kafka.bootstrap, sessions_topic(gw_settings),
                          lambda msgs: len(msgs) >= 1, 20)
    assert [m.key() for m in records] == [b"robot_a/s-life"]
    name, datum = decode_value(value_of(records[0]), ConfluentSchemaResolver(registry_url))
    assert (name, datum["kind"], datum["robot_id"]) == ("session_event", "start", "robot_a")
