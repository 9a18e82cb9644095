"""Group commit: items that wait for a writer are written together, each answered with its own
result once its group has committed, on both databases."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from consentry.db import Database, UnitOfWork
from consentry.group_commit import GroupCommit

pytestmark = pytest.mark.anyio


class Writes:
    """A group writer over the real database that can be held, and records what each group held."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.held = asyncio.Event()
        self.held.set()
        self.started = asyncio.Event()
        self.fails_on: int | None = None

    async def __call__(self, uow: UnitOfWork, items: list[int]) -> list[int]:
        self.groups.append(items)
        self.started.set()
        await self.held.wait()
        # A statement, so that the group has a transaction of its own to commit.
        await uow.scalar(text("SELECT 1"))
        if self.fails_on in items:
            raise ValueError(f"item {self.fails_on} cannot be written")
        return [item * 10 for item in items]


def _writer(database: Database, writes: Writes, writers: int = 1) -> GroupCommit[int, int]:
    return GroupCommit(database, writes, writers=writers, size=lambda item: item, limit=10)


async def _hold_first(writes: Writes, group: GroupCommit[int, int]) -> asyncio.Task[int]:
    """Submit 1 and let its writer start and wait inside its transaction."""
    writes.held.clear()
    first = asyncio.create_task(group.submit(1))
    await writes.started.wait()
    return first


async def test_items_that_wait_for_a_busy_writer_are_written_in_one_transaction(
    app: FastAPI,
) -> None:
    database: Database = app.state.database
    writes = Writes()
    group = _writer(database, writes)
    before = database.transactions
    first = await _hold_first(writes, group)
    waiting = [asyncio.create_task(group.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0.05)
    assert writes.groups == [[1]]  # the others wait for the only writer
    writes.held.set()
    assert await first == 10
    assert [await task for task in waiting] == [20, 30, 40]
    assert writes.groups == [[1], [2, 3, 4]]
    assert database.transactions - before == 2


async def test_a_lone_item_is_written_at_once(app: FastAPI) -> None:
    writes = Writes()
    group = _writer(app.state.database, writes, writers=2)
    assert await asyncio.wait_for(group.submit(5), timeout=5) == 50
    assert writes.groups == [[5]]


async def test_a_group_stops_at_its_limit_and_a_larger_item_goes_alone(app: FastAPI) -> None:
    writes = Writes()
    group = _writer(app.state.database, writes)
    first = await _hold_first(writes, group)
    # Sizes 4, 5 and 3 fill 12 of a limit of 10: 4 and 5 go together, then 3; 11 goes alone.
    waiting = [asyncio.create_task(group.submit(n)) for n in (4, 5, 3, 11)]
    await asyncio.sleep(0.05)
    writes.held.set()
    await first
    assert [await task for task in waiting] == [40, 50, 30, 110]
    assert writes.groups == [[1], [4, 5], [3], [11]]


async def test_every_item_of_a_failed_group_gets_its_error_and_later_groups_are_written(
    app: FastAPI,
) -> None:
    writes = Writes()
    group = _writer(app.state.database, writes)
    first = await _hold_first(writes, group)
    writes.fails_on = 3
    failing = [asyncio.create_task(group.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0.05)
    writes.held.set()
    assert await first == 10
    for task in failing:
        with pytest.raises(ValueError, match="item 3 cannot be written"):
            await task
    assert await group.submit(4) == 40


async def test_a_caller_that_goes_away_leaves_its_group_written(app: FastAPI) -> None:
    writes = Writes()
    group = _writer(app.state.database, writes)
    first = await _hold_first(writes, group)
    gone = asyncio.create_task(group.submit(2))
    staying = asyncio.create_task(group.submit(3))
    await asyncio.sleep(0.05)
    gone.cancel()
    writes.held.set()
    assert await first == 10
    assert await asyncio.wait_for(staying, timeout=5) == 30
    assert writes.groups == [[1], [2, 3]]
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_drain_waits_until_every_submitted_item_is_written(app: FastAPI) -> None:
    writes = Writes()
    group = _writer(app.state.database, writes, writers=2)
    first = await _hold_first(writes, group)
    later = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0.05)
    draining = asyncio.create_task(group.drain())
    await asyncio.sleep(0.05)
    assert not draining.done()
    writes.held.set()
    await asyncio.wait_for(draining, timeout=5)
    assert first.done() and later.done()
    assert sorted(item for items in writes.groups for item in items) == [1, 2]


async def test_an_item_submitted_as_the_last_writer_ends_starts_a_writer(app: FastAPI) -> None:
    writes = Writes()
    group = _writer(app.state.database, writes)

    async def one_after_another() -> list[int]:
        # Each submits the moment the one before is answered, as a client sending batch after
        # batch does: before the writer that answered it has ended.
        return [await group.submit(item) for item in range(1, 4)]

    assert await asyncio.wait_for(one_after_another(), timeout=5) == [10, 20, 30]
    assert writes.groups == [[1], [2], [3]]
