"""Bucketing: every point gets its hour and minute; the fast writers match fastavro."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robostream.processors import wire
from robostream.processors.aggregations import SessionWindows
from robostream.processors.bucketing import bucket_records
from robostream.processors.records import DerivedCodec, TelemetryBucket, WindowStats
from robostream.schemas import InMemorySchemaResolver
from robostream.times import HOUR_US, MINUTE_US
from tests.unit.processors.helpers import HOUR_START, signal_records

CODEC = DerivedCodec(InMemorySchemaResolver())


def test_each_point_gets_the_hour_and_minute_it_falls_in() -> None:
    start = HOUR_START + 59 * MINUTE_US + 59_950_000  # 50 ms before the next hour
    records = signal_records(3, lambda k: (float(k), 2.0 * k), start=start)
    buckets = bucket_records(records)
    assert [b.bucket_minute - HOUR_START for b in buckets] == [59 * MINUTE_US, 60 * MINUTE_US]
    assert [b.bucket_hour for b in buckets] == [HOUR_START, HOUR_START + HOUR_US]
    for bucket in buckets:
        for point in bucket.points():
            assert point.timestamp - point.timestamp % MINUTE_US == bucket.bucket_minute
    first, second = buckets
    assert list(first.seqs) == [0] * 5 and list(first.indexes) == [0, 1, 2, 3, 4]
    assert list(second.seqs)[:5] == [0] * 5 and list(second.indexes)[:5] == [5, 6, 7, 8, 9]
    assert [s.seq for s in second.slices()] == [0, 1, 2]


def test_records_with_different_metrics_share_a_bucket_with_nan_gaps() -> None:
    a = signal_records(1, lambda k: (1.0, 2.0))
    b = signal_records(1, lambda k: (3.0,), names=("c",), first_seq=1, start=HOUR_START + 100_000)
    (bucket,) = bucket_records(a + b)
    assert set(bucket.values) == {"a", "b", "c"}
    assert np.isnan(bucket.values["c"][:10]).all() and (np.asarray(bucket.values["c"][10:]) == 3.0).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 5_000_000), st.floats(-1e300, 1e300), st.integers(0, 2**40))
def test_fast_writers_are_byte_equal_to_fastavro(count: int, period: int, scale: float, seq: int) -> None:
    records = signal_records(count, lambda k: (scale * np.sin(k), float("nan") if k % 3 else k),
                             period_us=period, first_seq=seq)
    records[0].units["channels.x"] = "V"
    for bucket in bucket_records(records):
        fast = wire.telemetry_bucket(CODEC.schema_id("t", TelemetryBucket), bucket)
        assert fast == CODEC.encode("t", bucket)
    session = SessionWindows("robot_1", "s1", 0)
    session.add(session.fresh(records))
    for window in session.close_idle(1 << 62):
        assert wire.window_stats(CODEC.schema_id("w", WindowStats), window) == CODEC.encode(
            "w", window.to_record())


def test_varints_cover_the_long_range() -> None:
    values = np.array([0, 1, -1, 63, -64, 64, 2**31, -(2**63), 2**63 - 1, 1_800_000_000_000_000])
    assert wire.varints(values) == b"".join(wire.varint(int(v)) for v in values)
    assert wire.varint_list(values) == [wire.varint(int(v)) for v in values]
