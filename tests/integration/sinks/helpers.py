"""Story helpers of the sink tests: make realistic records, produce them, wait, look."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from confluent_kafka import Producer

from robostream.config import Settings
from robostream.schemas import DataType, Envelope, SchemaIdResolver, build_envelope, encode_record
from robostream.schemas.examples import example_payload, time_series_payload
from robostream.sinks import Worker
from robostream.sinks.buckets import Minute
from robostream.topics import topic_for

SAMPLES_PER_RECORD = 10  # 100 Hz telemetry, 0.1 s per record (the SDK's batch)


@cache
def _payload(samples: int) -> dict[str, Any]:
    return build_envelope("time_series", time_series_payload(samples), robot_id="robot_001",
                          session_id="s", seq=0).payload


def telemetry(session: str, count: int, *, robot: str = "robot_001", first_seq: int = 0,
              start_s: float | None = None, samples: int = SAMPLES_PER_RECORD) -> Iterator[Envelope]:
    """``count`` time_series records of ``samples`` samples each (100 Hz), consecutive seqs."""
    start_us = int((time.time() if start_s is None else start_s) * 1_000_000)
    for seq in range(first_seq, first_seq + count):
        yield Envelope(start_us + seq * samples * 10_000, robot, session, DataType.TIME_SERIES, seq,
                       _payload(samples))


def image(session: str, seq: int, *, kind: str = "rgb", camera: str = "front", size: int = 4096,
          robot: str = "robot_001", ts_s: float | None = None, content: Any = None) -> Envelope:
    """One camera frame (validated like the gateway would)."""
    payload = example_payload("images")
    payload.update(kind=kind, camera_id=camera)
    fmt = {"rgb": "jpeg", "depth": "png", "pointcloud": "ply", "thumbnail": "jpeg"}[kind]
    payload["blob"] = {"format": fmt, "content": content if content is not None else
                       bytes((seq * 31 + i) % 251 for i in range(size))}
    if isinstance(content, dict):
        payload["blob"].update(size_bytes=content["size"], sha256=content["sha256"])
    return build_envelope("images", payload, robot_id=robot, session_id=session, seq=seq,
                          timestamp=ts_s if ts_s is not None else time.time())


def producer(settings: Settings) -> Producer:
    return Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 5,
                     "acks": "all", "enable.idempotence": True,
                     "message.max.bytes": settings.topics.max_message_bytes})


def produce(settings: Settings, resolver: SchemaIdResolver, envelopes: Iterable[Envelope],
            kafka: Producer | None = None) -> int:
    """Encode and produce envelopes to their data type's topic; returns how many."""
    kafka = kafka or producer(settings)
    count = 0
    for envelope in envelopes:
        record = encode_record(envelope, resolver, topic_prefix=settings.topics.prefix)
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        kafka.produce(topic_for(envelope.data_type, settings), record.value, record.key,
                      headers=headers)
        count += 1
        if count % 1000 == 0:
            kafka.poll(0)
    assert kafka.flush(30) == 0
    return count


def produce_raw(settings: Settings, topic: str, value: bytes, key: bytes | None = None,
                headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
    kafka = producer(settings)
    kafka.produce(topic, value, key, headers=headers or [])
    assert kafka.flush(30) == 0


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def rest(url: str, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url + path, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
        return json.loads(body) if body else response.status


def points_in_mongo(db: Any, session: str, robot: str = "robot_001") -> int:
    """Points landed for a session: ``sum(n)`` of its telemetry documents of the channel group
    holding the most (every sample has a document per channel group of its record)."""
    rows = list(db.telemetry.aggregate([
        {"$match": {"robot_id": robot, "session_id": session}},
        {"$group": {"_id": "$group", "points": {"$sum": "$n"}}}]))
    return max((int(r["points"]) for r in rows), default=0)


def stored_samples(db: Any, session: str) -> list[tuple[int, int]]:
    """``(seq, i)`` of every sample stored in a session's ``telemetry`` minute buckets, from the
    channel group holding the most (a duplicate would appear twice)."""
    by_group: dict[str, list[tuple[int, int]]] = {}
    for doc in db.telemetry.find({"session_id": session}):
        minute = Minute.from_document(doc)
        by_group.setdefault(minute.group, []).extend(
            (int(seq), int(index)) for seq, index in zip(minute.seqs, minute.indexes, strict=True))
    return max(by_group.values(), key=len, default=[])


@contextmanager
def running_worker(settings: Settings, names: list[str] | None = None, **kwargs: Any) -> Iterator[Worker]:
    """A sink worker in this process (task threads + REST on a free port)."""
    worker = Worker(settings, names, **kwargs)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
