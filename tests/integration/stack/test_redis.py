"""Redis of the local stack: the pub/sub the live view rides on."""

from __future__ import annotations

import time
from typing import Any


def test_pubsub_round_trip(redis_client: Any, unique: str) -> None:
    channel = f"live:robot_001:{unique}"
    sub = redis_client.pubsub()
    sub.subscribe(channel)
    assert sub.get_message(timeout=5)["type"] == "subscribe"

    assert redis_client.publish(channel, b'{"x": 1.5}') == 1
    deadline = time.monotonic() + 5
    msg = None
    while msg is None and time.monotonic() < deadline:
        msg = sub.get_message(timeout=1)
    assert msg is not None and msg["data"] == b'{"x": 1.5}'
    sub.close()
