"""Batches written together: judged as if committed one after another, each kept with its own
time received, on both databases."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from consentry.db import format_timestamp
from consentry.events import service
from tests.conftest import _asyncpg_dsn
from tests.events.support import count_rows, ingest, new_subject, now, stored
from tests.faults.polling import until
from tests.helpers import event

pytestmark = pytest.mark.anyio


async def _batch(
    app: FastAPI, events: list[dict[str, Any]], received_at: datetime
) -> service.Batch:
    """A batch prepared as the intake prepares it."""
    pseudonyms = await app.state.pseudonyms.get()
    return service.prepare(pseudonyms, events, received_at, None, app.state.max_json_depth)


async def test_a_group_is_judged_as_if_its_batches_committed_in_turn(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    subject = new_subject()
    shared, first_own, second_own = event(subject), event(subject), event(subject)
    first_received, second_received = now() - timedelta(seconds=2), now() - timedelta(seconds=1)
    first = await _batch(app, [shared, first_own], first_received)
    # The second repeats the first's event, and one of its own twice.
    second = await _batch(app, [second_own, shared, second_own], second_received)
    async with app.state.database.unit_of_work() as uow:
        answers = await service.write_batches(uow, [first, second])
    assert [[result["status"] for result in answer] for answer in answers] == [
        ["accepted", "accepted"],
        ["accepted", "duplicate", "duplicate"],
    ]
    # Each event is kept once, with the time its own batch was received.
    received = {item["event_id"]: item["received_at"] for item in await stored(client, subject)}
    assert received == {
        shared["event_id"]: format_timestamp(first_received),
        first_own["event_id"]: format_timestamp(first_received),
        second_own["event_id"]: format_timestamp(second_received),
    }
    assert await count_rows(app) == 3


@pytest.fixture
def one_writer(app: FastAPI) -> service.EventWriter:
    """The app's event writer replaced by one with a single writer, as a pool of one gets."""
    writer = service.event_writer(app.state.database, pool_size=1)
    app.state.event_writer = writer
    return writer


@asynccontextmanager
async def _events_held(database_url: str) -> AsyncIterator[None]:
    """Writers of events wait while the block runs: at the insert on PostgreSQL (a table lock),
    at BEGIN on SQLite (another connection's write lock)."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        locker = await asyncpg.connect(_asyncpg_dsn(database_url))
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE events IN SHARE MODE")
                yield
        finally:
            await locker.close()
        return
    assert url.database is not None
    locker_sqlite = sqlite3.connect(url.database, isolation_level=None)
    try:
        locker_sqlite.execute("BEGIN IMMEDIATE")
        yield
        locker_sqlite.execute("COMMIT")
    finally:
        locker_sqlite.close()


async def test_batches_that_wait_for_the_writer_share_its_next_transaction(
    database_url: str, app: FastAPI, client: httpx.AsyncClient, one_writer: service.EventWriter
) -> None:
    writer = one_writer
    subject = new_subject()
    shared = event(subject)
    batches = [[shared, event(subject), event(new_subject())] for _ in range(12)]
    # The pseudonym key is written on first use (SQLite's write lock below would hold that too).
    await app.state.pseudonyms.get()
    before = app.state.database.transactions
    async with _events_held(database_url):
        sent = [asyncio.create_task(ingest(client, batch)) for batch in batches]

        async def all_pending() -> bool:
            return bool(writer.pending == len(batches))

        # The writer's first group is held in its transaction; whatever it did not take waits.
        await until(all_pending, "every batch pending")
    results = await asyncio.gather(*sent)
    # Twelve batches in at most two transactions: the held one and the next.
    assert app.state.database.transactions - before <= 2
    assert sorted(result["results"][0]["status"] for result in results) == [
        "accepted",
        *["duplicate"] * 11,
    ]
    assert all(
        [item["status"] for item in result["results"][1:]] == ["accepted", "accepted"]
        for result in results
    )
    assert await count_rows(app) == 1 + 2 * 12
