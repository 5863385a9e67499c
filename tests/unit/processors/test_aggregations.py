"""Tumbling windows: exact statistics of a known signal, identical whatever the batching."""

from __future__ import annotations

import itertools
import math
import statistics
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robostream.processors.aggregations import ClosedWindow, SessionWindows, iter_stats, window_start
from robostream.topics import StatsResolution
from tests.unit.processors.helpers import HOUR_START, signal_records

LATENESS = 2_000_000
SECOND = StatsResolution.SECOND
MINUTE = StatsResolution.MINUTE
HOUR = StatsResolution.HOUR


def known(k: int) -> tuple[float, float]:
    """Sample k (100 Hz): a dyadic saw-tooth, and an integer signal missing every 13th sample."""
    return ((k % 8) * 0.25 - 1.0, math.nan if k % 13 == 0 else 1000.0 + (k * 7) % 5)


def run(batches: list[list], *, reload: bool = True) -> dict[tuple[str, int], ClosedWindow]:
    """Feed batches (restarting from the dumped state between them) and close everything."""
    session = SessionWindows("robot_1", "s1", LATENESS)
    out: list[ClosedWindow] = []
    for batch in batches:
        session.add(session.fresh(batch))
        out += session.close_ready()
        if reload:
            session = SessionWindows.load(session.dump(), LATENESS)
    out += session.close_idle(1 << 62)
    return {(w.resolution.value, w.start): w for w in out}


def exact(samples: list[float]) -> tuple[int, float, float, Fraction, Fraction, float]:
    """count, min, max, mean, variance (population) and last, computed with fractions."""
    values = [Fraction(x) for x in samples]
    mean = sum(values) / len(values)
    variance = sum((x - mean) ** 2 for x in values) / len(values)
    return len(samples), min(samples), max(samples), mean, variance, samples[-1]


def test_windows_of_a_known_signal_have_the_exact_statistics() -> None:
    seconds = 125
    records = signal_records(seconds * 10, known)
    windows = run([records])
    assert sorted({r for r, _ in windows}) == ["1h", "1m", "1s"]
    assert sum(1 for r, _ in windows if r == "1s") == seconds
    assert sum(1 for r, _ in windows if r == "1m") == 3  # 0-60, 60-120, 120-125
    for (resolution, start), window in windows.items():
        size = {"1s": 1, "1m": 60, "1h": 3600}[resolution] * 100
        first = (start - HOUR_START) // 10_000
        ks = range(first, min(first + size, seconds * 100))
        assert window.end - window.start == size * 10_000
        for name, count, low, high, mean, stddev, last in iter_stats(window):
            column = 0 if name == "a" else 1
            samples = [known(k)[column] for k in ks if not math.isnan(known(k)[column])]
            n, lo, hi, exact_mean, exact_var, exact_last = exact(samples)
            assert (count, low, high, last) == (n, lo, hi, exact_last)
            assert math.isclose(mean, float(exact_mean), rel_tol=1e-12, abs_tol=1e-12)
            assert math.isclose(stddev, math.sqrt(exact_var), rel_tol=1e-9, abs_tol=1e-12)


def test_a_window_split_over_batches_and_restarts_is_bit_identical() -> None:
    records = signal_records(700, lambda k: (math.sin(k / 7) * 1e3 + 1e6, math.cos(k / 3)))
    whole = run([records], reload=False)
    for cuts in ([1, 2, 3], [99, 350, 351, 699], list(range(7, 700, 61))):
        bounds = [0, *cuts, len(records)]
        split = run([records[a:b] for a, b in itertools.pairwise(bounds)])
        assert split.keys() == whole.keys()
        for key, window in whole.items():
            assert list(iter_stats(split[key])) == list(iter_stats(window))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=10, max_size=400),
    st.lists(st.integers(1, 39), max_size=6),
    st.integers(0, 2**32),
)
def test_any_signal_any_batching(values: list[float], cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = np.array(values)
    data[rng.random(data.shape) < 0.1] = np.nan
    n_records = len(values) // 10
    records = signal_records(n_records, lambda k: (data[k],), names=("x",), period_us=37_000)
    whole = run([records], reload=False)
    bounds = sorted({0, n_records, *[c for c in cuts if c < n_records]})
    split = run([records[a:b] for a, b in itertools.pairwise(bounds)])
    for key, window in whole.items():
        assert list(iter_stats(split[key])) == list(iter_stats(window))
        ks = [k for k in range(n_records * 10)
              if window.start <= HOUR_START + k * 37_000 < window.end and not math.isnan(data[k])]
        (_name, count, low, high, mean, stddev, last), = iter_stats(window)
        samples = [float(data[k]) for k in ks]
        assert count == len(samples) and low == min(samples) and high == max(samples)
        assert last == samples[-1]
        assert math.isclose(mean, statistics.fmean(samples), rel_tol=1e-9, abs_tol=1e-6)
        assert math.isclose(stddev, statistics.pstdev(samples), rel_tol=1e-6, abs_tol=1e-6)


def test_windows_are_aligned_to_the_epoch() -> None:
    t = HOUR_START + 3_723_456_789
    assert window_start(t, SECOND) == HOUR_START + 3_723_000_000
    assert window_start(t, MINUTE) == HOUR_START + 3_720_000_000
    assert window_start(t, HOUR) == HOUR_START + 3_600_000_000


def test_a_window_closes_when_event_time_passes_its_end_plus_lateness() -> None:
    session = SessionWindows("robot_1", "s1", LATENESS, (SECOND,))
    records = signal_records(41, known)  # 4.1 s of samples
    session.add(session.fresh(records[:30]))  # up to 2.99 s: [0, 1 s) closes at 1 s + 2 s
    assert session.close_ready() == []
    session.add(session.fresh(records[30:31]))  # up to 3.09 s
    assert [w.start - HOUR_START for w in session.close_ready()] == [0]
    session.add(session.fresh(records[31:]))  # up to 4.09 s
    assert [w.start - HOUR_START for w in session.close_ready()] == [1_000_000]


def test_late_samples_are_dropped_and_duplicates_skipped() -> None:
    session = SessionWindows("robot_1", "s1", LATENESS, (SECOND,))
    records = signal_records(50, known)
    session.add(session.fresh(records))
    closed = session.close_ready()
    assert closed and closed[0].start == HOUR_START
    late = signal_records(1, lambda k: (5.0, 5.0), first_seq=100)  # window 0 again: closed
    session.add(session.fresh(late))
    assert session.late == 10  # samples (of every metric)
    session.add(session.fresh(records[:5]))  # replayed seqs
    assert session.duplicates == 5
    assert all(w.start != HOUR_START for w in session.close_idle(1 << 62))


def test_idle_closing_follows_the_extrapolated_clock() -> None:
    session = SessionWindows("robot_1", "s1", LATENESS)
    session.add(session.fresh(signal_records(5, known)))  # 0.5 s of data
    assert session.close_ready() == []
    closed = session.close_idle(session.watermark + 10_000_000)  # silent for 10 s
    assert {w.resolution for w in closed} == {SECOND}
    assert all(w.closed_by == "idle" for w in closed)
    assert session.open_windows == 2  # the minute and the hour stay open
    more = signal_records(1, lambda k: (1.0, 1.0), first_seq=5, per_record=1)  # sealed second
    session.add(session.fresh(more))
    assert session.late == 1  # late for the 1 s window only (1m and 1h are still open)
