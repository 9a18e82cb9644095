"""Group commit: work items written together, one transaction for all that wait for a writer.

An item that finds a writer free is written at once, alone: a quiet service adds no delay.
Under load, items that arrive while every writer is busy wait, and the next writer free takes
them all (up to a size) in one transaction. A transaction's fixed costs (its round trips, its
locks, its commit and the wait for the log to reach the disk) are then paid once for the group
rather than once for each item; the answers are the same, since the items were concurrent and
any order of them was one they could have committed in.

Each item is answered only once its group has committed, with its own result; if the group
fails, every item in it is answered with that error (a failed commit stores none of them). An
item whose caller has gone (a cancelled request) is still written with its group: the writers
are tasks of their own, never cancelled by a request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from consentry.db import Database, UnitOfWork

Item = TypeVar("Item")
Result = TypeVar("Result")

# Writes a group in a unit of work: one result per item, in order.
WriteGroup = Callable[[UnitOfWork, list[Item]], Awaitable[list[Result]]]


class GroupCommit(Generic[Item, Result]):
    """At most `writers` transactions at once, each writing every item waiting, up to `limit`
    in `size` (an item larger than `limit` is written alone)."""

    def __init__(
        self,
        database: Database,
        write: WriteGroup[Item, Result],
        *,
        writers: int,
        size: Callable[[Item], int],
        limit: int,
    ) -> None:
        self._database = database
        self._write = write
        self._writers = writers
        self._size = size
        self._limit = limit
        self._waiting: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        # Referenced until done: the event loop keeps only weak references to tasks.
        self._running: set[asyncio.Task[None]] = set()
        # Items taken by a writer whose transaction has not ended yet.
        self._writing = 0

    @property
    def pending(self) -> int:
        """Items submitted and not yet committed or failed: waiting, or in a transaction."""
        return len(self._waiting) + self._writing

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is waiting; its result once its group has committed."""
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if len(self._running) < self._writers:
            self._running.add(asyncio.create_task(self._write_while_waiting()))
        return await answer

    async def drain(self) -> None:
        """Wait until every item submitted so far is written (at shutdown)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _write_while_waiting(self) -> None:
        try:
            await self._write_groups()
        finally:
            # Left at once, not by a done callback: the caller this writer answered last runs
            # before such a callback would, and an item it submitted would find no writer.
            task = asyncio.current_task()
            assert task is not None
            self._running.discard(task)

    async def _write_groups(self) -> None:
        while self._waiting:
            group = self._take_group()
            self._writing += len(group)
            try:
                async with self._database.unit_of_work() as uow:
                    results = await self._write(uow, [item for item, _ in group])
            except Exception as error:  # every item gets the group's error, raised by its caller
                for _, answer in group:
                    if not answer.done():
                        answer.set_exception(error)
                continue
            except BaseException:  # cancelled at shutdown: nobody waits any longer
                for _, answer in group:
                    answer.cancel()
                raise
            finally:
                self._writing -= len(group)
            for (_, answer), result in zip(group, results, strict=True):
                if not answer.done():  # not cancelled by its caller
                    answer.set_result(result)

    def _take_group(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        group = [self._waiting.popleft()]
        total = self._size(group[0][0])
        while self._waiting and total + (size := self._size(self._waiting[0][0])) <= self._limit:
            group.append(self._waiting.popleft())
            total += size
        return group
