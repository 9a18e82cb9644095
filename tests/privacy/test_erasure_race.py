"""Erasure against writers in flight: nothing a writer commits can outlive the erasure (PostgreSQL).

A writer of a subject's data shares the subject's erasure lock; the erasure takes it alone. A
batch or a consent write that arrives while an erasure runs waits, then finds the tombstone,
whether the consent write is a subject's first choice (locked with its placeholder row) or a
change to a recorded one (written by one statement that takes the lock itself).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from consentry.consent.models import ConsentRecord
from consentry.events.models import Event
from consentry.privacy import repository
from tests.events.support import outcomes
from tests.helpers import admin, choice, event
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

SUBJECT = "learner-racing"
# Long enough for a writer that does not wait to have answered; it proves only that one waits.
STILL_WAITING = 0.3


async def _stored_events(app: FastAPI) -> int:
    async with app.state.database.reader() as connection:
        query = select(func.count()).where(Event.subject_id == SUBJECT)
        return int(await connection.scalar(query) or 0)


@pytest.mark.parametrize("writer", ["event batch", "consent write", "first consent write"])
async def test_a_writer_arriving_during_an_erasure_waits_and_finds_the_tombstone(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, writer: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")
    if writer != "first consent write":
        put = await client.put(f"/v1/subjects/{SUBJECT}/consent", json=choice(), headers=admin())
        assert put.status_code == 200
    pseudonyms = await app.state.pseudonyms.get()
    now = datetime.now(UTC)
    async with app.state.database.unit_of_work() as uow:
        await repository.lock_subject_for_erasure(uow, SUBJECT)
        if writer == "event batch":
            body = {"events": [event(SUBJECT, "necessary")]}
            call = client.post("/v1/events", json=body, headers=admin())
        else:
            # A change: a write that changes nothing answers from the state it reads.
            body = choice(performance=True)
            call = client.put(f"/v1/subjects/{SUBJECT}/consent", json=body, headers=admin())
        task = asyncio.create_task(call)
        await asyncio.sleep(STILL_WAITING)
        # Without the lock the writer would have committed by now, before the erasure.
        assert not task.done()
        await repository.erase_subject(
            uow, SUBJECT, pseudonyms.of(SUBJECT), now, now + timedelta(days=90)
        )
    response = await task
    if writer == "event batch":
        assert outcomes(response.json()) == ["subject_erased"]
    else:
        assert_problem(response, 410, "subject_erased")
    assert await _stored_events(app) == 0
    assert await _records_naming_the_subject(app) == 0


async def _records_naming_the_subject(app: FastAPI) -> int:
    async with app.state.database.reader() as connection:
        query = select(func.count()).where(ConsentRecord.subject_id == SUBJECT)
        return int(await connection.scalar(query) or 0)
