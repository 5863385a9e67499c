"""The Redis sink publishes new telemetry once: a redelivered batch stores again, publishes nothing.

Against the test stack's Redis, through :class:`RedisSink` itself (no Kafka: the records are
already converted). A live viewer subscribed to ``live:{robot}:{session}:time_series`` must see
every point once, whatever the sink re-writes after a crash or a rebalance.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from robostream.config import Settings
from robostream.processors import TelemetryBucket
from robostream.schemas import DataType, build_envelope
from robostream.schemas.examples import example_payload
from robostream.sinks import SinkRecord, keys
from robostream.sinks.points import Telemetry
from robostream.sinks.redis import RedisSink

ROBOT = "robot_001"
T0 = 1_796_000_000_000_000  # µs, mid-minute


class _Context:
    connector = "redis-test"

    def __init__(self) -> None:
        self.reported: list[tuple[SinkRecord, BaseException]] = []

    def report(self, record: SinkRecord, exc: BaseException) -> None:
        self.reported.append((record, exc))


def bucket(session: str, points: list[tuple[int, int]]) -> TelemetryBucket:
    """A bucket of ``(seq, index)`` points, 10 ms apart per index, 100 ms per seq."""
    ts = [T0 + seq * 100_000 + i * 10_000 for seq, i in points]
    return TelemetryBucket(ROBOT, session, 0, 0, ts, [s for s, _ in points], [i for _, i in points],
                           {"pose.position.x": [float(s) + i / 10 for s, i in points]})


def record(offset: int, *buckets: TelemetryBucket) -> SinkRecord:
    return SinkRecord("time_series", 0, offset, None, b"", item=Telemetry(list(buckets)))


def raw(session: str, seq: int, samples: int = 10) -> SinkRecord:
    return record(seq, bucket(session, [(seq, i) for i in range(samples)]))


@pytest.fixture
def sink(settings: Settings, redis_client: Any) -> Iterator[tuple[RedisSink, _Context]]:
    context = _Context()
    redis_sink = RedisSink(settings)
    redis_sink.open(context)  # type: ignore[arg-type]
    yield redis_sink, context
    redis_sink.close()


@pytest.fixture
def session_feed(redis_client: Any) -> Iterator[tuple[str, queue.Queue[list[tuple[int, int]]]]]:
    """A fresh session and the ``(seq, i)`` of the points of every message published for it."""
    session = f"once-{uuid.uuid4().hex[:8]}"
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.live_channels(ROBOT, session, "time_series")[1])
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    messages: queue.Queue[list[tuple[int, int]]] = queue.Queue()
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                messages.put([(p["seq"], p["i"]) for p in orjson.loads(message["data"])["points"]])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    yield session, messages
    stop.set()
    listener.join()
    pubsub.close()
    redis_client.delete(keys.latest_key(ROBOT, session))


def received(messages: queue.Queue[list[tuple[int, int]]], expected: int) -> list[list[tuple[int, int]]]:
    """The next ``expected`` messages, then a check that no other one follows."""
    out = [messages.get(timeout=5) for _ in range(expected)]
    with pytest.raises(queue.Empty):
        messages.get(timeout=0.5)
    return out


def test_a_redelivered_batch_is_stored_again_and_not_published_again(
    sink: tuple[RedisSink, _Context], session_feed: tuple[str, Any], redis_client: Any,
) -> None:
    redis_sink, context = sink
    session, messages = session_feed
    first = [raw(session, seq) for seq in range(5)]
    redis_sink.write(first)
    assert [m[0][0] for m in received(messages, 5)] == [0, 1, 2, 3, 4]  # one message per record

    redis_sink.write([*first, raw(session, 5), raw(session, 5)])  # redelivery + one new (twice)
    assert received(messages, 1) == [[(5, i) for i in range(10)]]
    assert redis_client.zcard(keys.latest_key(ROBOT, session)) == 60
    assert not context.reported


def test_a_merged_bucket_with_one_new_point_is_published(
    sink: tuple[RedisSink, _Context], session_feed: tuple[str, Any], redis_client: Any,
) -> None:
    """A bucket of several records (the derived topic) whose first point is already stored."""
    redis_sink, context = sink
    session, messages = session_feed
    redis_sink.write([raw(session, 0), raw(session, 1)])
    received(messages, 2)
    merged = bucket(session, [(0, 9), (1, 0), (1, 1), (2, 0)])  # (2, 0) is new
    redis_sink.write([record(10, merged)])
    assert received(messages, 1) == [[(0, 9), (1, 0), (1, 1), (2, 0)]]
    redis_sink.write([record(10, merged)])
    received(messages, 0)
    assert redis_client.zcard(keys.latest_key(ROBOT, session)) == 21
    assert not context.reported


def test_the_ring_keeps_the_newest_points_and_the_session_is_listed_live(
    sink: tuple[RedisSink, _Context], session_feed: tuple[str, Any], redis_client: Any,
    settings: Settings,
) -> None:
    redis_sink, _ = sink
    session, messages = session_feed
    window = settings.redis.latest_window
    count = window // 10 + 5
    redis_sink.write([raw(session, seq) for seq in range(count)])
    received(messages, count)
    ring = redis_client.zrange(keys.latest_key(ROBOT, session), 0, -1)
    assert len(ring) == window
    assert orjson.loads(ring[-1])["seq"] == count - 1 and orjson.loads(ring[0])["seq"] == 5
    assert 0 < redis_client.ttl(keys.latest_key(ROBOT, session)) <= 24 * 3600
    newest = redis_client.zscore(keys.LIVE_SESSIONS_KEY, keys.live_session_member(ROBOT, session))
    assert newest == T0 + (count - 1) * 100_000 + 9 * 10_000


def log_record(session: str, seq: int, message: str) -> SinkRecord:
    payload = {**example_payload(DataType.LOG), "message": message}
    envelope = build_envelope(DataType.LOG, payload, robot_id=ROBOT, session_id=session, seq=seq,
                              timestamp=(T0 + seq * 1000) / 1_000_000)
    return SinkRecord("log", 0, seq, None, b"", item=envelope)


def test_a_log_record_is_published_once_on_its_sessions_log_channel_and_kept_in_a_ring(
    sink: tuple[RedisSink, _Context], redis_client: Any,
) -> None:
    redis_sink, context = sink
    session = f"logs-{uuid.uuid4().hex[:8]}"
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.live_channels(ROBOT, session, "log")[1])
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    try:
        first = [log_record(session, seq, f"line {seq}") for seq in range(3)]
        redis_sink.write(first)
        redis_sink.write([*first, log_record(session, 3, "line 3")])  # a redelivery and one new
        published = []
        while (message := pubsub.get_message(timeout=1)) is not None:
            if message["type"] == "message":
                published.append(orjson.loads(message["data"]))
    finally:
        pubsub.close()
    assert [(m["seq"], m["message"]) for m in published] == [(s, f"line {s}") for s in range(4)]
    assert published[0] == {"type": "log", "robot_id": ROBOT, "session_id": session, "seq": 0,
                            "timestamp_us": T0, "level": "warning", "logger": "arm.controller",
                            "message": "line 0", "attributes": {"joint": "joint_3"}}
    ring = redis_client.zrange(keys.log_key(ROBOT, session), 0, -1)
    assert [orjson.loads(m)["seq"] for m in ring] == [0, 1, 2, 3]
    assert 0 < redis_client.ttl(keys.log_key(ROBOT, session)) <= 24 * 3600
    # a session that has sent only log lines so far is listed as running, at its newest line
    newest = redis_client.zscore(keys.LIVE_SESSIONS_KEY, keys.live_session_member(ROBOT, session))
    assert newest == T0 + 3 * 1000
    assert not context.reported
    redis_client.delete(keys.log_key(ROBOT, session))
