"""The task loop: what is written, when offsets are committed, what a store outage does."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from robostream.config import Settings
from robostream.sinks.errors import HEADER_PREFIX
from robostream.sinks.status import State
from robostream.sinks.task import backoff_delay, commit_offsets, to_sink_record
from tests.unit.sinks.fakes import RESOLVER, FakeMessage, harness, time_series_messages


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
def settings() -> Settings:
    return Settings(topics={"prefix": "unit"})


def committed_after_flush(log: list[str]) -> None:
    """Every commit covers only records whose write was flushed before it (one partition)."""
    written = flushed = 0
    for entry in log:
        if entry.startswith("write:"):
            written += int(entry.split(":")[1])
        elif entry == "flush":
            flushed = written
        elif entry.startswith("commit:"):
            assert int(entry.split("@")[1]) <= flushed, f"{entry} before its records were flushed"


def test_offsets_are_committed_only_after_the_sink_flushed(settings: Settings) -> None:
    h = harness(settings, time_series_messages(settings, RESOLVER, 30), batch_size=10,
                offset_flush_interval_ms=0)
    h.start()
    wait_for(lambda: len(h.sink.landed) == 30)
    h.stop()
    writes = [i for i, e in enumerate(h.log) if e.startswith("write:")]
    commits = [i for i, e in enumerate(h.log) if e.startswith("commit:")]
    assert len(writes) == len(commits) == 3
    for write, commit in zip(writes, commits, strict=True):
        assert h.log[write + 1] == "flush" and write < commit
    committed_after_flush(h.log)
    assert h.consumer.committed_offsets == {("unit.time_series", 0): 30}


def test_commits_are_batched_beside_the_writes_and_the_last_one_lands_at_stop(settings: Settings) -> None:
    h = harness(settings, time_series_messages(settings, RESOLVER, 30), batch_size=1,
                offset_flush_interval_ms=60_000)
    h.start()
    wait_for(lambda: len(h.sink.landed) == 30)
    writes = [e for e in h.log if e.startswith("write:")]
    assert len(writes) == 30  # one record per write: nothing waits for a commit
    assert [e for e in h.log if e.startswith("commit:")] == ["commit:0@1"]  # the first, then batched
    h.stop()
    committed_after_flush(h.log)
    assert [e for e in h.log if e.startswith("commit:")][-1] == "commit:0@30"
    assert h.consumer.committed_offsets == {("unit.time_series", 0): 30}


def test_a_store_outage_pauses_retries_the_same_batch_and_resumes(settings: Settings) -> None:
    h = harness(settings, time_series_messages(settings, RESOLVER, 20), batch_size=20,
                errors_retry_delay_max_ms=50)
    h.sink.fail_writes = 3
    h.start()
    wait_for(lambda: h.task.status.snapshot()["state"] == "PAUSED" or len(h.sink.landed) == 20)
    wait_for(lambda: len(h.sink.landed) == 20)
    h.stop()
    assert h.log.count("write-failed") == 3
    assert h.log.index("pause") < h.log.index("write:20") < h.log.index("resume")
    assert [r.offset for r in h.sink.landed] == list(range(20))  # same batch, nothing skipped
    assert h.consumer.committed_offsets == {("unit.time_series", 0): 20}
    assert h.sink.pings >= 3
    assert h.task.status.snapshot()["state"] == State.STOPPED


def test_status_shows_paused_with_the_reason_while_the_store_is_down(settings: Settings) -> None:
    h = harness(settings, time_series_messages(settings, RESOLVER, 5), batch_size=5,
                errors_retry_delay_max_ms=200)
    h.sink.fail_writes = 10**6
    h.start()
    wait_for(lambda: h.task.status.snapshot().get("retry", {}).get("attempt", 0) >= 2)
    status = h.task.status.snapshot()
    assert status["state"] == "PAUSED" and status["paused_reason"] == "store_unavailable"
    assert "store down" in status["retry"]["last_error"]
    assert not h.consumer.committed_offsets
    h.sink.fail_writes = 0
    wait_for(lambda: h.task.status.snapshot()["state"] == "RUNNING")
    h.stop()
    assert len(h.sink.landed) == 5


def test_a_poison_record_goes_to_the_dlq_with_context_headers_and_the_task_goes_on(
    settings: Settings,
) -> None:
    good = time_series_messages(settings, RESOLVER, 4)
    poison = FakeMessage("unit.time_series", 0, 4, b"robot_001/s1", b"not avro",
                         [("seq", b"99")])
    after = [FakeMessage(m.topic(), 0, 5 + i, m.key(), m.value(), m.headers())
             for i, m in enumerate(time_series_messages(settings, RESOLVER, 3))]
    h = harness(settings, [*good, poison, *after], batch_size=100)
    h.start()
    wait_for(lambda: h.consumer.committed_offsets.get(("unit.time_series", 0)) == 8)
    h.stop()
    assert len(h.sink.landed) == 7
    [dlq] = h.producer.sent
    assert dlq["topic"] == "unit.dlq" and dlq["value"] == b"not avro"
    headers = dlq["headers"]
    assert headers["seq"] == b"99"  # the original headers travel too
    assert headers[HEADER_PREFIX + "topic"] == b"unit.time_series"
    assert headers[HEADER_PREFIX + "partition"] == b"0"
    assert headers[HEADER_PREFIX + "offset"] == b"4"
    assert headers[HEADER_PREFIX + "stage"] == b"VALUE_CONVERTER"
    assert headers[HEADER_PREFIX + "exception.class.name"].endswith(b"ValidationError")
    assert b"Confluent wire format" in headers[HEADER_PREFIX + "exception.message"]
    assert headers[HEADER_PREFIX + "exception.stacktrace"].startswith(b"Traceback")
    assert h.log.index("dlq-flush") < h.log.index("commit:0@8")
    assert h.task.status.snapshot()["metrics"]["records_failed"] == 1


def test_errors_tolerance_none_fails_the_task_and_commits_nothing(settings: Settings) -> None:
    poison = FakeMessage("unit.time_series", 0, 0, b"k", b"garbage")
    h = harness(settings, [poison, *time_series_messages(settings, RESOLVER, 3)],
                errors_tolerance="none")
    h.start()
    wait_for(lambda: h.task.status.snapshot()["state"] == "FAILED")
    assert h.thread is not None
    h.thread.join(5)
    status = h.task.status.snapshot()
    assert "TaskFailedError" in status["trace"] and "garbage" not in status["trace"]
    assert not h.consumer.committed_offsets and not h.sink.landed and not h.producer.sent


def test_retry_timeout_turns_a_long_outage_into_failed(settings: Settings) -> None:
    h = harness(settings, time_series_messages(settings, RESOLVER, 2), errors_retry_timeout_ms=100,
                errors_retry_delay_max_ms=30)
    h.sink.fail_writes = 10**6
    h.start()
    wait_for(lambda: h.task.status.snapshot()["state"] == "FAILED")
    assert "errors_retry_timeout_ms" in h.task.status.snapshot()["trace"]
    assert not h.consumer.committed_offsets


def test_user_pause_stops_consuming_until_resume(settings: Settings) -> None:
    h = harness(settings, time_series_messages(settings, RESOLVER, 10), batch_size=5)
    h.task.pause()
    h.start()
    wait_for(lambda: h.task.status.snapshot()["state"] == "PAUSED")
    wait_for(lambda: h.consumer.paused == set(h.consumer.partitions))  # the pause reached the consumer
    assert set(h.consumer.position.values()) == {0}  # and nothing was read before it
    assert not h.sink.landed and h.task.status.snapshot()["paused_reason"] == "user"
    h.task.resume()
    wait_for(lambda: len(h.sink.landed) == 10)
    assert h.task.status.snapshot()["state"] == "RUNNING"
    h.stop()


def test_commit_offsets_are_the_next_offset_per_partition() -> None:
    msgs = [FakeMessage("t", p, o, None, None) for p, o in [(0, 5), (1, 2), (0, 7), (1, 1)]]
    offsets = commit_offsets([to_sink_record(m) for m in msgs])  # type: ignore[arg-type]
    assert [(tp.topic, tp.partition, tp.offset) for tp in offsets] == [("t", 0, 8), ("t", 1, 3)]


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_grows_exponentially_and_is_capped(attempt: int) -> None:
    delay = backoff_delay(attempt, cap_s=2.0)
    expected = min(2.0, 0.25 * 2 ** (attempt - 1))
    assert 0.8 * expected <= delay <= min(2.0, 1.2 * expected)
    assert backoff_delay(1, cap_s=2.0, hint_s=1.5) >= 1.5


def test_a_retried_batch_does_not_copy_its_poison_record_to_the_dlq_twice(settings: Settings) -> None:
    poison = FakeMessage("unit.time_series", 0, 0, b"k", b"garbage")
    good = [FakeMessage(m.topic(), 0, 1 + i, m.key(), m.value(), m.headers())
            for i, m in enumerate(time_series_messages(settings, RESOLVER, 3))]
    h = harness(settings, [poison, *good], errors_retry_delay_max_ms=20)
    h.sink.fail_writes = 2
    h.start()
    wait_for(lambda: h.consumer.committed_offsets.get(("unit.time_series", 0)) == 4)
    h.stop()
    assert len(h.producer.sent) == 1 and len(h.sink.landed) == 3
