"""Reconnect backoff: exponential, capped, jittered, never below the gateway's hint."""

from __future__ import annotations

import random

import pytest

from robostream_sdk import Backoff


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.5, max_s=8.0, factor=2.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_keeps_each_delay_between_half_and_all_of_the_ceiling() -> None:
    backoff = Backoff(initial_s=1.0, max_s=16.0, jitter=0.5, rng=random.Random(7))
    for _ in range(200):
        ceiling = backoff.ceiling()
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
        if backoff.attempts > 6:
            backoff.reset()


def test_robots_that_failed_together_do_not_retry_together() -> None:
    delays = {round(Backoff(initial_s=1.0, rng=random.Random(seed)).next_delay(), 6) for seed in range(20)}
    assert len(delays) > 15


def test_a_retry_hint_is_a_floor() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0)
    assert backoff.next_delay(hint_s=5.0) == 5.0


def test_reset_starts_over() -> None:
    backoff = Backoff(initial_s=0.5, jitter=0.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(initial_s=2.0, max_s=1.0)


def test_delay_of_a_given_attempt_counts_nothing() -> None:
    backoff = Backoff(initial_s=0.1, max_s=2.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert backoff.attempts == 0 and backoff.next_delay() == 0.1


@pytest.mark.parametrize("jitter", [0.0, 0.2, 1.0])
def test_the_random_share_is_the_jitter(jitter: float) -> None:
    backoff = Backoff(initial_s=1.0, max_s=1.0, jitter=jitter, rng=random.Random(3))
    delays = [backoff.delay(0) for _ in range(500)]
    assert all(1.0 - jitter <= d <= 1.0 for d in delays)
    assert max(delays) - min(delays) >= 0.9 * jitter  # the whole range is used
