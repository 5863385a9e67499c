"""Replay timing: recorded gaps divided by the speed, on a fake clock."""

from __future__ import annotations

import pytest

from robostream.replay import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def pace(speed: float | None, stamps_s: list[float], work_s: float = 0.0) -> tuple[Pacer, FakeClock]:
    clock = FakeClock()
    pacer = Pacer(speed, clock=clock, sleep=clock.sleep)
    for stamp in stamps_s:
        pacer.wait(int(stamp * 1_000_000))
        clock.now += work_s
    return pacer, clock


def test_1x_keeps_the_recorded_gaps() -> None:
    pacer, clock = pace(1.0, [0.0, 0.5, 1.5, 1.5, 4.0])
    assert clock.sleeps == [0.5, 1.0, 2.5]
    assert pacer.paced_s == pytest.approx(4.0)


def test_10x_divides_the_gaps_by_ten() -> None:
    pacer, _ = pace(10.0, [i * 0.1 for i in range(51)])
    assert pacer.paced_s == pytest.approx(0.5)


def test_max_never_waits() -> None:
    pacer, clock = pace(None, [0.0, 10.0, 20.0])
    assert clock.sleeps == [] and pacer.paced_s == 0.0


def test_a_late_record_goes_at_once_and_the_schedule_does_not_drift() -> None:
    # each record takes 0.3 s to send; at 1x with 0.2 s gaps the replay is late and never sleeps,
    # then a long gap brings it back on the recorded schedule
    pacer, clock = pace(1.0, [0.0, 0.2, 0.4, 5.0], work_s=0.3)
    assert clock.sleeps == [pytest.approx(4.1)]
    assert pacer.paced_s == pytest.approx(5.0)


def test_records_out_of_order_do_not_wait() -> None:
    _, clock = pace(1.0, [1.0, 0.5, 2.0])
    assert clock.sleeps == [1.0]


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0.0)
