"""The statements of a consent write on PostgreSQL: a change to a recorded choice is two.

Here the process does not hold the state in memory (test_write_from_memory covers the write
that does). The state is read without a lock or a transaction; one statement then shares the
erasure lock, writes the state only from the revision read, and appends the record, the outbox
message and the cache's notice, a transaction by itself. A write that changes nothing is the
read alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from consentry.settings import Settings
from tests.conftest import make_settings
from tests.consent.test_history import all_history, verify_chain
from tests.helpers import admin, choice
from tests.systems.support import deliveries, register

pytestmark = pytest.mark.anyio

SUBJECT = "learner-statements"
URL = f"/v1/subjects/{SUBJECT}/consent"


@pytest.fixture
def settings(database_url: str) -> Settings:
    # One pooled connection: every statement of a request runs on the one the test watches.
    return make_settings(database_url, database_pool_size=1, webhook_allow_hosts=["127.0.0.1"])


def _postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE makes every write the only writer")


@asynccontextmanager
async def _statements(app: FastAPI) -> AsyncIterator[list[str]]:
    """Every statement sent on the pool's one connection while the block runs, BEGIN included."""
    sent: list[str] = []

    def log(logged: asyncpg.connection.LoggedQuery) -> None:
        sent.append(logged.query)

    async with app.state.database.pool.acquire() as connection:
        connection.add_query_logger(log)
    try:
        yield sent
    finally:
        async with app.state.database.pool.acquire() as connection:
            connection.remove_query_logger(log)


@pytest.mark.parametrize("systems", [0, 2])
async def test_a_change_to_a_recorded_choice_is_a_read_and_one_statement(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, systems: int
) -> None:
    _postgres(database_url)
    await app.state.pseudonyms.get()  # the development key is read once, in its own transaction
    for n in range(systems):
        await register(client, f"recommendations-{n}", f"http://127.0.0.1:9/{n}")
    assert (await client.put(URL, json=choice(), headers=admin())).status_code == 200
    app.state.consent_cache.forget(SUBJECT)  # kept by the write above, when it listened already
    before = app.state.database.transactions
    async with _statements(app) as sent:
        response = await client.put(URL, json=choice(performance=True), headers=admin())
    assert response.status_code == 200
    assert len(sent) == 2, sent
    assert not any(s.split()[0].upper() in {"BEGIN", "COMMIT"} for s in sent), sent
    # The one statement that wrote is the unit of work's one transaction.
    assert app.state.database.transactions - before == 1
    for n in range(systems):
        assert len(await deliveries(client, f"recommendations-{n}")) == 2
    history = await all_history(client, SUBJECT)
    assert [record["categories"]["performance"] for record in history] == [True, False]
    verify_chain(history)


async def test_a_write_that_changes_nothing_is_one_read(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    _postgres(database_url)
    await app.state.pseudonyms.get()
    first = await client.put(URL, json=choice(), headers=admin())
    async with _statements(app) as sent:
        again = await client.put(URL, json=choice(), headers=admin())
    assert again.status_code == 200
    assert again.headers["etag"] == first.headers["etag"]
    assert len(sent) == 1, sent
    assert len(await all_history(client, SUBJECT)) == 1
