"""The polls-in-flight limit: a bound while it holds, slow start then AIMD as the API answers."""

from __future__ import annotations

import asyncio

import pytest

from gateway import poll_slots
from gateway.poll_slots import PollSlots


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poll_slots, "ADJUST_EVERY", 0.0)


async def test_the_limit_bounds_what_runs_and_hands_slots_over_in_order() -> None:
    slots = PollSlots(ceiling=10, initial=2)
    await slots.acquire()
    await slots.acquire()
    third = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()
    slots.release()
    await asyncio.wait_for(third, 1)
    assert slots.in_use == 2


async def test_late_polls_double_the_limit_until_a_failure_then_add_a_quarter() -> None:
    slots = PollSlots(ceiling=100, initial=8)
    slots.started_late()
    slots.started_late()
    assert slots.limit == 32
    slots.failed()
    assert slots.limit == 16
    slots.started_late()
    assert slots.limit == 20
    for _ in range(20):
        slots.started_late()
    assert slots.limit == 100  # the ceiling (GATEWAY_POLL_CONCURRENCY)


async def test_failures_never_take_the_limit_below_one() -> None:
    slots = PollSlots(ceiling=100, initial=4)
    for _ in range(5):
        slots.failed()
    assert slots.limit == 1


async def test_a_raised_limit_lets_the_waiting_polls_start() -> None:
    slots = PollSlots(ceiling=100, initial=1)
    await slots.acquire()
    waiting = [asyncio.create_task(slots.acquire()) for _ in range(3)]
    await asyncio.sleep(0.01)
    slots.started_late()
    slots.started_late()
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert slots.in_use == 4


async def test_a_cancelled_waiter_keeps_no_slot() -> None:
    slots = PollSlots(ceiling=10, initial=1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release()
    assert slots.in_use == 0
    await asyncio.wait_for(slots.acquire(), 1)


async def test_changes_wait_for_the_last_one_to_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poll_slots, "ADJUST_EVERY", 60.0)
    slots = PollSlots(ceiling=100, initial=8)
    slots.started_late()
    slots.started_late()
    slots.failed()
    assert slots.limit == 16


async def test_once_a_poll_answered_changes_wait_its_round_trip_not_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start-up's backlog reaches the ceiling in a few round trips (8 -> 16 -> 32 -> 50 took three
    seconds when every change waited one)."""
    monkeypatch.setattr(poll_slots, "ADJUST_EVERY", 60.0)
    slots = PollSlots(ceiling=100, initial=8)
    async with slots.slot():
        await asyncio.sleep(0.02)
    slots.started_late()
    slots.started_late()  # within the round trip of the change before: too soon
    assert slots.limit == 16
    await asyncio.sleep(0.2)
    slots.started_late()
    assert slots.limit == 32
