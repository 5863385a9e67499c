"""The per-robot message rate limit: token buckets on an injected clock (no sleeps)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from robostream.config import GatewaySettings
from robostream.gateway.limits import RateLimiter, TokenBucket
from robostream.gateway.protocol import RETRIABLE_CODES, GatewayCode, gateway_error, nack_frame


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(20, 0.0) == 0.0
    assert bucket.take(1, 0.0) == pytest.approx(0.1)  # one token comes every 1/10 s
    assert bucket.tokens == 0  # a refused take takes nothing
    assert bucket.take(5, 0.2) == pytest.approx(0.3)  # 2 tokens there, 3 missing
    assert bucket.take(5, 0.5) == 0.0
    assert bucket.refill(100.0) == 20  # never more than the burst


def test_a_take_larger_than_the_burst_waits_for_a_full_bucket_then_goes_into_debt() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    bucket.take(10, 0.0)
    assert bucket.take(50, 0.0) == pytest.approx(1.0)  # until full, not until 50 tokens
    assert bucket.take(50, 1.0) == 0.0
    assert bucket.tokens == -30
    assert bucket.take(1, 1.0) == pytest.approx(3.1)  # the debt is paid back first


def test_time_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=10.0)
    bucket.take(5, 10.0)
    assert bucket.refill(9.0) == 0


def test_each_robot_has_its_own_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, 200, clock=clock)
    assert limiter.acquire({"robot_a": 200}) is None
    limited = limiter.acquire({"robot_a": 50})
    assert limited is not None and limited.robot_id == "robot_a"
    assert limited.retry_after_ms == 500
    assert limited.message == "robot robot_a is over its rate limit of 100 messages/s; retry in 500 ms"
    assert limiter.acquire({"robot_b": 200}) is None  # robot_b is not slowed by robot_a
    clock.advance(0.5)
    assert limiter.acquire({"robot_a": 50}) is None


def test_a_batch_for_several_robots_is_all_or_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 10, clock=clock)
    assert limiter.acquire({"robot_a": 10}) is None
    limited = limiter.acquire({"robot_b": 5, "robot_a": 1})
    assert limited is not None and limited.robot_id == "robot_a"
    assert limiter.acquire({"robot_b": 10}) is None  # robot_b's 5 were not taken above


def test_retry_hint_is_at_least_one_millisecond_and_rounds_up() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 1, clock=clock)
    assert limiter.acquire({"r": 1}) is None
    limited = limiter.acquire({"r": 1})
    assert limited is not None and limited.retry_after_ms == 334
    clock.advance(0.333)  # 0.999 tokens: a third of a millisecond to go
    limited = limiter.acquire({"r": 1})
    assert limited is not None and limited.retry_after_ms == 1


def test_full_buckets_are_forgotten_when_too_many_robots_are_tracked() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 10, clock=clock, max_buckets=3)
    for robot in ("a", "b", "c"):
        assert limiter.acquire({robot: 10}) is None
    clock.advance(1.0)  # all full again
    assert limiter.acquire({"d": 1}) is None
    assert len(limiter) == 1
    assert limiter.acquire({"d": 20}) is not None  # d's own bucket was kept


def test_settings_default_to_no_limit_and_build_a_limiter_when_set() -> None:
    assert RateLimiter.from_settings(GatewaySettings()) is None
    settings = GatewaySettings(max_messages_per_s_per_robot=50, rate_burst_messages=5)
    limiter = RateLimiter.from_settings(settings)
    assert limiter is not None and (limiter.rate, limiter.burst) == (50, 5)
    with pytest.raises(ValidationError):
        GatewaySettings(max_messages_per_s_per_robot=0)
    with pytest.raises(ValidationError):
        GatewaySettings(rate_burst_messages=0)


def test_rate_limited_nack_is_retriable_names_the_limit_and_carries_the_retry_hint() -> None:
    assert GatewayCode.RATE_LIMITED in RETRIABLE_CODES
    error = gateway_error(GatewayCode.RATE_LIMITED, "robot r is over its rate limit", retry_after_ms=250)
    nack = nack_frame(7, error, retriable=True, dlq=False)
    assert nack["code"] == "rate_limited" and nack["index"] is None
    assert nack["retry_after_ms"] == 250 and nack["retriable"] is True and nack["dlq"] is False
    assert "retry_after_ms" not in nack_frame(7, gateway_error(GatewayCode.KAFKA_ERROR, "x"),
                                               retriable=True, dlq=False)
