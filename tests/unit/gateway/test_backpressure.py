"""In-flight byte accounting: FIFO budgets, per connection and in total."""

from __future__ import annotations

import asyncio

import pytest

from robostream.gateway.backpressure import ByteBudget, InflightGate


async def test_budget_grants_until_the_limit_then_queues_first_come_first_served() -> None:
    budget = ByteBudget(100)
    assert budget.try_acquire(60) and not budget.try_acquire(50)
    order: list[str] = []

    async def take(name: str, nbytes: int) -> None:
        await budget.acquire(nbytes)
        order.append(name)

    first = asyncio.create_task(take("first", 50))
    await asyncio.sleep(0)
    second = asyncio.create_task(take("second", 10))  # would fit, but waits its turn
    await asyncio.sleep(0)
    assert order == [] and budget.waiting == 2
    budget.release(60)
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and budget.used == 60 and budget.peak == 60


async def test_a_request_above_the_limit_is_granted_only_when_the_budget_is_empty() -> None:
    budget = ByteBudget(10)
    assert budget.try_acquire(25)  # alone: would otherwise deadlock
    assert not budget.try_acquire(1)
    budget.release(25)
    assert budget.used == 0 and budget.peak == 25


async def test_a_cancelled_waiter_leaves_the_queue_and_holds_nothing() -> None:
    budget = ByteBudget(10)
    budget.try_acquire(10)
    waiter = asyncio.create_task(budget.acquire(5))
    behind = asyncio.create_task(budget.acquire(5))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.release(10)
    await behind
    assert budget.used == 5 and budget.waiting == 0


def test_releasing_more_than_taken_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="released more bytes than acquired"):
        ByteBudget(10).release(1)


async def test_gate_takes_from_both_budgets_or_neither() -> None:
    total = ByteBudget(100, "gateway")
    a, b = InflightGate(ByteBudget(60), total), InflightGate(ByteBudget(60), total)
    assert a.try_acquire(60) and not a.try_acquire(1)  # a's own budget is spent
    assert not b.try_acquire(50) and b.connection.used == 0  # the total is: b's budget untouched
    assert b.try_acquire(40) and total.used == 100
    a.release(60)
    b.release(40)
    assert total.used == a.connection.used == b.connection.used == 0


async def test_gate_says_which_budget_made_it_wait() -> None:
    total = ByteBudget(100, "gateway")
    gate, other = InflightGate(ByteBudget(50), total), InflightGate(ByteBudget(100), total)
    waits: list[tuple[str, int]] = []

    async def on_wait(scope: str, budget: ByteBudget) -> None:
        waits.append((scope, budget.limit))

    assert await gate.acquire(50, on_wait) is False
    pending = asyncio.create_task(gate.acquire(10, on_wait))
    await asyncio.sleep(0)
    assert waits == [("connection", 50)]
    gate.release(50)
    assert await pending is True
    other.try_acquire(90)
    blocked = asyncio.create_task(gate.acquire(20, on_wait))
    await asyncio.sleep(0)
    assert waits[-1] == ("gateway", 100)
    other.release(90)
    await blocked
    assert total.used == 30 and total.peak == 100
