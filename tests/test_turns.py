"""Turns at the pool: first come first served, every wait bounded, no turn lost or made up."""

from __future__ import annotations

import asyncio

import pytest

from consentry.turns import NoTurn, Turns

pytestmark = pytest.mark.anyio


async def _settle() -> None:
    """Let every task that can run, run."""
    for _ in range(5):
        await asyncio.sleep(0)


def _held_then_free(turns: Turns) -> None:
    """The one turn is held; given back, it is free again: none lost, none made up."""
    assert turns.free == 0
    turns.give_back()
    assert turns.free == 1


async def test_a_free_turn_is_taken_at_once_and_given_back() -> None:
    turns = Turns(2, 1.0)
    await turns.take()
    await turns.take()
    assert turns.free == 0
    turns.give_back()
    turns.give_back()
    assert turns.free == 2


async def test_waiters_get_turns_in_the_order_they_asked() -> None:
    turns = Turns(1, 5.0)
    await turns.take()
    order: list[int] = []

    async def wait(number: int) -> None:
        await turns.take()
        order.append(number)

    waiters = [asyncio.create_task(wait(n)) for n in range(4)]
    await _settle()
    for _ in range(4):
        turns.give_back()  # handed to the oldest waiter, not put back for a newcomer
        late = asyncio.create_task(wait(99))
        await _settle()
        late.cancel()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2, 3]
    _held_then_free(turns)


async def test_a_newcomer_does_not_take_a_turn_a_waiter_is_owed() -> None:
    turns = Turns(1, 5.0)
    await turns.take()
    waiter = asyncio.create_task(turns.take())
    await _settle()
    turns.give_back()
    # The turn went to the waiter before it ran: a newcomer now finds none free.
    newcomer = asyncio.create_task(turns.take())
    await _settle()
    assert waiter.done() and not newcomer.done()
    turns.give_back()
    await newcomer
    assert turns.free == 0


async def test_each_wait_ends_at_its_own_deadline() -> None:
    turns = Turns(1, 0.2)
    await turns.take()
    loop = asyncio.get_running_loop()
    ended: dict[str, float] = {}

    async def wait(name: str) -> None:
        began = loop.time()
        with pytest.raises(NoTurn):
            await turns.take()
        ended[name] = loop.time() - began

    first = asyncio.create_task(wait("first"))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(wait("second"))
    await first
    assert not second.done()  # the first one's timer does not end a younger wait
    async with asyncio.timeout(5):  # a wait whose timer was never set would hang here
        await second
    # A wait may end up to a tick of the loop's clock early, never more.
    assert 0.19 <= ended["first"] < 1.0
    assert 0.19 <= ended["second"] < 1.0
    _held_then_free(turns)


async def test_a_turn_given_back_before_the_deadline_ends_the_wait() -> None:
    turns = Turns(1, 0.2)
    await turns.take()
    waiter = asyncio.create_task(turns.take())
    await asyncio.sleep(0.05)
    turns.give_back()
    await waiter
    await asyncio.sleep(0.3)  # past the deadline: nothing fails, nothing is made up
    _held_then_free(turns)


async def test_a_cancelled_waiter_is_skipped() -> None:
    turns = Turns(1, 5.0)
    await turns.take()
    gone = asyncio.create_task(turns.take())
    next_one = asyncio.create_task(turns.take())
    await _settle()
    gone.cancel()
    await _settle()
    turns.give_back()
    await next_one
    _held_then_free(turns)


async def test_a_turn_handed_to_a_waiter_cancelled_before_it_ran_passes_on() -> None:
    turns = Turns(1, 5.0)
    await turns.take()
    handed = asyncio.create_task(turns.take())
    after = asyncio.create_task(turns.take())
    await _settle()
    turns.give_back()  # `handed` has its turn but has not run yet
    handed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(after, 1.0)
    _held_then_free(turns)


async def test_a_cancelled_waiter_is_dropped_when_its_deadline_passes() -> None:
    turns = Turns(1, 0.1)
    await turns.take()
    gone = asyncio.create_task(turns.take())
    await _settle()
    gone.cancel()
    await asyncio.sleep(0.2)
    _held_then_free(turns)
