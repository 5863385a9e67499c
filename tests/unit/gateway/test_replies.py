"""What a batch's answer says once Kafka's delivery reports are in."""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError

from robostream.gateway.ingest import PendingBatch, Rejection
from robostream.gateway.producer import DeliveryTracker


async def test_tracker_resolves_once_every_report_is_in_even_from_another_thread() -> None:
    tracker = DeliveryTracker(asyncio.get_running_loop())
    callbacks = [tracker.callback(i) for i in range(100)]
    tracker.produced = 100  # what GatewayProducer.produce_now counts
    tracker.seal()
    assert not tracker.done.done()

    def report() -> None:
        for i, callback in enumerate(callbacks):
            callback(KafkaError(KafkaError._MSG_TIMED_OUT) if i == 7 else None, None)

    thread = threading.Thread(target=report)
    thread.start()
    await asyncio.wait_for(tracker.done, 5)
    thread.join()
    assert list(tracker.errors) == [7]


async def test_reports_before_the_seal_and_empty_batches_complete_at_the_seal() -> None:
    early = DeliveryTracker(asyncio.get_running_loop())
    early.produced = 2
    early.callback(0)(None, None)
    early.callback(1)(None, None)
    assert not early.done.done()
    early.seal()
    empty = DeliveryTracker(asyncio.get_running_loop())
    empty.seal()
    assert early.done.done() and empty.done.done()


async def test_ack_carries_the_highest_durable_seq_and_nacks_come_first_by_index() -> None:
    tracker = DeliveryTracker(asyncio.get_running_loop())
    pending = PendingBatch(batch=4, nbytes=10, received_at=0.0, tracker=tracker)
    pending.data = [(0, 100, "log"), (2, 102, "log"), (3, 103, "json")]
    pending.rejections = [
        Rejection(
            {"code": "invalid_field", "message": "m", "index": 1, "seq": 101}, retriable=False, dlq_token=-1
        )
    ]
    tracker.errors = {2: KafkaError(KafkaError._MSG_TIMED_OUT)}  # the record of envelope #3 failed

    replies = pending.replies()

    assert [(r["type"], r.get("index"), r.get("code")) for r in replies] == [
        ("nack", 1, "invalid_field"),
        ("nack", 3, "kafka_error"),
        ("ack", None, None),
    ]
    assert replies[0]["dlq"] is True and replies[1]["retriable"] is True and replies[1]["dlq"] is False
    assert replies[-1] == {"type": "ack", "batch": 4, "seq": 102, "count": 2, "rejected": 2}


async def test_a_failed_dead_letter_is_reported_in_its_nack() -> None:
    tracker = DeliveryTracker(asyncio.get_running_loop())
    pending = PendingBatch(batch=1, nbytes=0, received_at=0.0, tracker=tracker)
    pending.rejections = [
        Rejection({"code": "malformed_frame", "message": "m"}, retriable=False, dlq_token=-1)
    ]
    tracker.errors = {-1: KafkaError(KafkaError._MSG_TIMED_OUT)}
    nack, ack = pending.replies()
    assert (nack["index"], nack["dlq"], ack["seq"], ack["count"], ack["rejected"]) == (
        None,
        False,
        None,
        0,
        1,
    )
