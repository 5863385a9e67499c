"""Replay and export recorded sessions; reset consumer groups; run Kafka's own tools.

* :func:`replay`: read a session back by time or offset, keep its timing (scaled by a speed) and
  re-publish it into a topic namespace (:class:`TopicPublisher`, ``replay.robot.*``) or through
  the gateway as the robot (:class:`GatewayPublisher`).
* :func:`export_session`: a session as an MCAP file (Foxglove) or JSON Lines.
* :func:`plan_reset` / :func:`execute_reset`: ``kafka-consumer-groups --reset-offsets`` for our
  groups (e.g. a sink's ``connect-<name>``), to land data again or re-run processors.
* :func:`tool_command` / :func:`run_tool`: Apache Kafka's CLI classes against the stack.

See docs/replay.md.
"""

from robostream.replay.bounds import (
    Bound,
    BoundError,
    parse_bound,
    parse_duration,
    parse_speed,
    parse_time,
)
from robostream.replay.export import ExportFormat, ExportReport, avro_to_json_schema, export_session
from robostream.replay.kafka_tools import TOOLS, run_tool, tool_command
from robostream.replay.offsets import (
    OffsetChange,
    ResetPlan,
    ResetSpec,
    Strategy,
    execute_reset,
    plan_reset,
)
from robostream.replay.progress import NoProgress, ProgressReporter, RichProgress
from robostream.replay.reader import (
    DEFAULT_SLACK,
    PartitionRange,
    ReplayError,
    SessionQuery,
    SessionReader,
    SessionRecord,
    plan_ranges,
)
from robostream.replay.replay import (
    GatewayPublisher,
    Pacer,
    Publisher,
    ReplayReport,
    TopicPublisher,
    default_replay_session,
    replay,
)

__all__ = [
    "DEFAULT_SLACK",
    "TOOLS",
    "Bound",
    "BoundError",
    "ExportFormat",
    "ExportReport",
    "GatewayPublisher",
    "NoProgress",
    "OffsetChange",
    "Pacer",
    "PartitionRange",
    "ProgressReporter",
    "Publisher",
    "ReplayError",
    "ReplayReport",
    "ResetPlan",
    "ResetSpec",
    "RichProgress",
    "SessionQuery",
    "SessionReader",
    "SessionRecord",
    "Strategy",
    "TopicPublisher",
    "avro_to_json_schema",
    "default_replay_session",
    "execute_reset",
    "export_session",
    "parse_bound",
    "parse_duration",
    "parse_speed",
    "parse_time",
    "plan_ranges",
    "plan_reset",
    "replay",
    "run_tool",
    "tool_command",
]
