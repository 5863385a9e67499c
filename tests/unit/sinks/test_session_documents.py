"""A session's start and end events date its document for retention without moving
``stats.last_seen``, the newest sample, where the API and the viewer end the session's data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from robostream.sinks.base import SessionEvent
from robostream.sinks.mongo import session_operation
from robostream.times import micros_to_datetime

MOMENT_US = 1_796_000_000_000_000


@pytest.mark.parametrize("kind", ["start", "end"])
def test_an_event_dates_the_session_but_is_not_a_sample(kind: str) -> None:
    event = SessionEvent({"robot_id": "robot_001", "session_id": "s1", "kind": kind, "timestamp": MOMENT_US})
    update = session_operation(event, datetime.now(UTC))._doc
    assert update["$max"] == {"last_activity": micros_to_datetime(MOMENT_US)}
    assert "stats.last_seen" not in update["$set"] and "stats" not in update["$set"]
