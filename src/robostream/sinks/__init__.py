"""Kafka-Connect-style sink connectors: MongoDB, S3 and Redis.

``robostream sink run`` starts a :class:`Worker` running the connectors of ``config.yaml``
(``connectors:``); each connector runs ``tasks`` consumers in group ``connect-<name>`` that
poll, batch, write, flush and only then commit offsets. See docs/sinks.md.
"""

from robostream.sinks.base import (
    PoisonRecordError,
    RetriableSinkError,
    SessionEvent,
    Sink,
    SinkContext,
    SinkRecord,
)
from robostream.sinks.connector import Connector, ConnectorConfigError, resolve_topic, subscription
from robostream.sinks.errors import ErrorHandler, Stage, TaskFailedError, context_headers
from robostream.sinks.runtime import Worker, lower_priority, select_connectors
from robostream.sinks.status import State
from robostream.sinks.task import SinkTask, group_id

__all__ = [
    "Connector",
    "ConnectorConfigError",
    "ErrorHandler",
    "PoisonRecordError",
    "RetriableSinkError",
    "SessionEvent",
    "Sink",
    "SinkContext",
    "SinkRecord",
    "SinkTask",
    "Stage",
    "State",
    "TaskFailedError",
    "Worker",
    "context_headers",
    "group_id",
    "lower_priority",
    "resolve_topic",
    "select_connectors",
    "subscription",
]
