"""Session start/end events from robots -> the compacted ``<prefix>.sessions`` topic.

Over WebSocket a robot sends ``{"type": "session_event", "event": <session_event datum>}`` when a
session starts or ends (and again after a reconnect: the topic is compacted per robot/session).
The gateway validates it, produces it keyed ``robot_id/session_id`` and answers ``session_ack``
once Kafka took it, or ``error`` with a code and a sentence.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaException

from robostream.config import Settings
from robostream.gateway.auth import Identity
from robostream.gateway.producer import DeliveryTracker, GatewayProducer
from robostream.gateway.protocol import GatewayCode, error_frame
from robostream.schemas import KafkaRecord, SchemaIdResolver, ValidationError, encode_value, validate_event
from robostream.schemas.catalog import subject_name
from robostream.schemas.envelope import record_key
from robostream.topics import sessions_topic

log = logging.getLogger(__name__)

SESSION_CONTENT_TYPE = b"application/vnd.robostream.session_event+avro"


class SessionEvents:
    """Turns robots' ``session_event`` control messages into records on the sessions topic."""

    def __init__(self, settings: Settings, producer: GatewayProducer, resolver: SchemaIdResolver) -> None:
        self.producer = producer
        self.resolver = resolver
        self.topic = sessions_topic(settings)
        self.subject = subject_name(self.topic)

    async def on_event(self, identity: Identity, message: dict[str, Any]) -> dict[str, Any]:
        """Validate, produce and wait for Kafka; the frame to send back to the robot."""
        try:
            datum = validate_event("session_event", message.get("event"))
        except ValidationError as exc:
            return error_frame(exc.code, f"session_event: {exc}", message_type="session_event")
        robot_id, session_id = datum["robot_id"], datum["session_id"]
        if not identity.may_write(robot_id):
            return error_frame(GatewayCode.FORBIDDEN_ROBOT_ID,
                               f"this connection may not write robot_id {robot_id!r}",
                               message_type="session_event")
        try:
            value = encode_value("session_event", datum, self.resolver, self.subject)
        except ValidationError as exc:
            return error_frame(exc.code, f"session_event: {exc}", message_type="session_event")
        tracker = DeliveryTracker(asyncio.get_running_loop())
        record = KafkaRecord(record_key(robot_id, session_id), value,
                             [("kind", str(datum["kind"]).encode()), ("content-type", SESSION_CONTENT_TYPE)])
        try:
            if not self.producer.produce_now(self.topic, record, tracker, 0):
                raise BufferError("producer queue full")
        except (BufferError, KafkaException, ValueError) as exc:
            log.warning("session %s/%s: cannot produce the %s event: %s", robot_id, session_id,
                        datum["kind"], exc)
            return error_frame(GatewayCode.KAFKA_ERROR, "Kafka did not take the session event; send it "
                               "again", message_type="session_event")
        tracker.seal()
        await tracker.done
        if tracker.errors:
            err = next(iter(tracker.errors.values()))
            return error_frame(GatewayCode.KAFKA_ERROR, f"Kafka did not take the session event: {err.str()}",
                               message_type="session_event")
        return {"type": "session_ack", "robot_id": robot_id, "session_id": session_id,
                "kind": datum["kind"]}
