"""A session's start and end events date its document for retention without moving
``stats.last_seen``, the newest sample, where the API and the viewer end the session's data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from robostream.sinks import keys
from robostream.sinks.base import SessionEvent
from robostream.sinks.mongo import session_operation
from robostream.times import HOUR_US, micros_to_datetime

MOMENT_US = 1_796_000_000_000_000
SAMPLE_US = MOMENT_US - HOUR_US  # the session's newest sample, before the event


@pytest.fixture
def sessions(mongo: Any, unique: str) -> Iterator[Any]:
    database = f"sd_{unique}"
    yield mongo[database]["sessions"]
    mongo.drop_database(database)


def _naive(micros: int) -> datetime:
    return micros_to_datetime(micros).replace(tzinfo=None)  # MongoDB hands back naive UTC


@pytest.mark.parametrize("kind", ["start", "end"])
def test_an_event_dates_the_session_but_is_not_a_sample(kind: str, sessions: Any) -> None:
    doc_id = keys.session_doc_id("robot_001", "s1")
    sessions.insert_one({"_id": doc_id, "stats": {"last_seen": _naive(SAMPLE_US)},
                         "last_activity": _naive(SAMPLE_US)})

    def event(at_us: int) -> None:
        datum = {"robot_id": "robot_001", "session_id": "s1", "kind": kind, "timestamp": at_us}
        sessions.bulk_write([session_operation(SessionEvent(datum), datetime.now(UTC))])

    event(MOMENT_US)
    document = sessions.find_one({"_id": doc_id})
    assert document["last_activity"] == _naive(MOMENT_US)
    assert document["stats"] == {"last_seen": _naive(SAMPLE_US)}
    event(MOMENT_US - 2 * HOUR_US)  # an older event (redelivered) does not date it back
    assert sessions.find_one({"_id": doc_id})["last_activity"] == _naive(MOMENT_US)
