"""What landed where: MongoDB points per seq, Kafka records per seq, S3 objects, Redis ring members.

Every check returns counts a user could reproduce with the stores' own clients.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from robostream.config import Settings
from robostream.sinks.buckets import Minute
from robostream.topics import topic_for
from tests.reliability.report import FaultRow
from tests.reliability.sizes import ROWS_PER_ENVELOPE
from tests.reliability.streaming import RobotRun, Streamer


@dataclass
class Landed:
    """Per robot session: how many points each seq has in the store, and in which order they came."""

    points: dict[int, int] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # seqs in the order the store received them

    def lost(self, acked: set[int], rows: int = ROWS_PER_ENVELOPE) -> int:
        """Acked messages (rows) not found."""
        return sum(max(0, rows - self.points.get(seq, 0)) for seq in acked)

    def duplicated(self, rows: int = ROWS_PER_ENVELOPE) -> int:
        """Messages (rows) found more than once."""
        return sum(max(0, n - rows) for n in self.points.values())

    def landed(self, acked: set[int], rows: int = ROWS_PER_ENVELOPE) -> int:
        return sum(min(rows, self.points.get(seq, 0)) for seq in acked)

    def out_of_order(self) -> int:
        """Seqs the store received after a higher seq of the same session."""
        highest, late = -1, 0
        for seq in self.order:
            late += seq < highest
            highest = max(highest, seq)
        return late


def mongo_telemetry(db: Any, run: RobotRun) -> Landed:
    """Points per seq in the ``telemetry`` minute buckets (of the channel group holding the most:
    a sample has a document per channel group); order = the seqs in stored time order."""
    by_group: dict[str, Landed] = {}
    docs = db.telemetry.find({"robot_id": run.robot_id, "session_id": run.session_id}).sort("timestamp", 1)
    for doc in docs:
        minute = Minute.from_document(doc)
        found = by_group.setdefault(minute.group, Landed())
        for seq in minute.seqs.tolist():
            if seq not in found.points:
                found.order.append(seq)
            found.points[seq] = found.points.get(seq, 0) + 1
    return max(by_group.values(), key=lambda f: sum(f.points.values()), default=Landed())


def wait_landed(check: Callable[[], Landed], runs_acked: set[int], timeout_s: float) -> Landed:
    """Poll ``check`` until every acked seq has its points (or the deadline; the caller asserts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        landed = check()
        if landed.lost(runs_acked) == 0 or time.monotonic() > deadline:
            return landed
        time.sleep(1.0)


def redis_ring(client: Any, run: RobotRun) -> Landed:
    """Points per seq in ``telemetry:{robot}:{session}:latest`` (a sorted set: no order)."""
    found = Landed()
    seen = Counter()
    for member in client.zrange(f"telemetry:{run.robot_id}:{run.session_id}:latest", 0, -1):
        seen[orjson.loads(member)["seq"]] += 1
    found.points = dict(seen)
    return found


def s3_images(s3: Any, bucket: str, run: RobotRun) -> int:
    """Raw image objects of the session."""
    prefix = f"raw/{run.robot_id}/{run.session_id}/frames/"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(len(page.get("Contents", [])) for page in pages)


@dataclass
class KafkaSeqs:
    """Records of one topic per session key: seqs in partition order (resends included)."""

    by_key: dict[str, list[int]] = field(default_factory=dict)

    def redelivered(self) -> int:
        return sum(len(seqs) - len(set(seqs)) for seqs in self.by_key.values())

    def first_order_violations(self, key: str) -> int:
        """First occurrences of seqs that come after a higher seq's first occurrence."""
        seen: set[int] = set()
        highest, late = -1, 0
        for seq in self.by_key.get(key, []):
            if seq in seen:
                continue
            seen.add(seq)
            late += seq < highest
            highest = max(highest, seq)
        return late


def kafka_seqs(settings: Settings, data_type: str, keys: set[str], timeout_s: float = 60) -> KafkaSeqs:
    """Every record of the data type's topic up to the high watermark, grouped by session key."""
    topic = topic_for(data_type, settings)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "enable.auto.commit": False,
                         "group.id": f"reliability-{uuid.uuid4().hex[:8]}"})
    found = KafkaSeqs()
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is not None:
                    continue
                if msg.offset() >= ends[msg.partition()] - 1:
                    done.add(msg.partition())
                key = (msg.key() or b"").decode()
                if key in keys:
                    headers = dict(msg.headers() or [])
                    found.by_key.setdefault(key, []).append(int(headers["seq"]))
    finally:
        consumer.close()
    return found


def fault_row(fault: str, streamer: Streamer, results: list[tuple[set[int], Landed]],
              note: str, recovery_s: float, data_type: str = "time_series") -> FaultRow:
    acked = sum(len(seqs) for seqs, _ in results) * ROWS_PER_ENVELOPE
    keys = {f"{run.robot_id}/{run.session_id}" for run in streamer.runs}
    redelivered = kafka_seqs(streamer.settings, data_type, keys).redelivered() if data_type else 0
    return FaultRow(
        fault=fault,
        sent=sum(run.sent_envelopes - len(run.image_seqs) for run in streamer.runs) * ROWS_PER_ENVELOPE,
        acked=acked,
        landed=sum(landed.landed(seqs) for seqs, landed in results),
        lost=sum(landed.lost(seqs) for seqs, landed in results),
        duplicated=sum(landed.duplicated() for _, landed in results),
        envelopes=sum(len(seqs) for seqs, _ in results),
        kafka_redelivered=redelivered, recovery_s=recovery_s, note=note,
    )


def assert_exactly_once_in_order(row: FaultRow, results: list[tuple[set[int], Landed]]) -> None:
    assert row.lost == 0, f"{row.fault}: {row.lost} acked messages missing"
    assert row.duplicated == 0, f"{row.fault}: {row.duplicated} messages landed twice"
    for _, landed in results:
        assert landed.out_of_order() == 0, f"{row.fault}: seqs landed out of order"
