"""A write decided on the state this process holds in memory (PostgreSQL, where the cache runs).

A learner's page reads the consent just before the choice, so the write finds the state kept and
sends one statement, without reading it again; the state it commits is kept in turn, so the
learner's next change is one statement too. Memory may lag a change committed elsewhere: only
a change is taken from it, written only from the revision it follows; no change, a refusal, or a
change that found the state moved on is decided on the state read then.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from consentry.consent import repository
from consentry.consent.cache import ConsentCache
from consentry.privacy.worker import run_once
from consentry.settings import Settings
from tests.conftest import make_settings
from tests.consent.test_cache import _read_into_cache
from tests.consent.test_history import all_history, verify_chain
from tests.consent.test_write_statements import _statements
from tests.helpers import admin, choice
from tests.replicas import until
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

SUBJECT = "learner-memory"
URL = f"/v1/subjects/{SUBJECT}/consent"


@pytest.fixture
def settings(database_url: str) -> Settings:
    if not database_url.startswith("postgresql"):
        pytest.skip("the cache runs on PostgreSQL only")
    # One pooled connection: every statement of a request runs on the one the test watches.
    return make_settings(database_url, database_pool_size=1)


async def _kept(app: FastAPI, client: httpx.AsyncClient) -> Any:
    """Record a first choice (all withdrawn) and read it into this process's memory."""
    cache: ConsentCache = app.state.consent_cache
    await until(lambda: cache.listening)
    await app.state.pseudonyms.get()  # the development key is read once, in its own transaction
    assert (await client.put(URL, json=choice(), headers=admin())).status_code == 200
    await _read_into_cache(client, cache, SUBJECT)
    return cache.get(SUBJECT)[1]


def _hold(app: FastAPI, kept: Any) -> None:
    """Let memory hold `kept` again, as a process that has not yet heard of a change would."""
    cache: ConsentCache = app.state.consent_cache
    cache.fill(SUBJECT, kept, cache.epoch)
    assert cache.get(SUBJECT)[1] is kept


async def _lagging(app: FastAPI, client: httpx.AsyncClient, kept: Any) -> None:
    """Grant `performance` (revision 2) while memory goes on holding revision 1."""
    assert (await client.put(URL, json=choice(True), headers=admin())).status_code == 200
    _hold(app, kept)


async def test_a_change_to_a_state_held_in_memory_is_one_statement(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _kept(app, client)
    before = app.state.database.transactions
    async with _statements(app) as sent:
        response = await client.put(URL, json=choice(performance=True), headers=admin())
    assert response.status_code == 200
    assert response.json()["revision"] == 2
    assert len(sent) == 1, sent
    assert app.state.database.transactions - before == 1
    history = await all_history(client, SUBJECT)
    assert [record["categories"]["performance"] for record in history] == [True, False]
    verify_chain(history)


async def test_no_change_against_lagging_memory_is_decided_on_a_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _lagging(app, client, await _kept(app, client))
    # Memory says `performance` is withdrawn already; the database says granted.
    response = await client.put(URL, json=choice(), headers=admin())
    assert response.status_code == 200
    assert response.json()["revision"] == 3
    assert response.json()["categories"]["performance"]["granted"] is False
    history = await all_history(client, SUBJECT)
    assert [record["categories"]["performance"] for record in history] == [False, True, False]
    verify_chain(history)


async def test_a_change_against_lagging_memory_is_decided_again_on_a_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _lagging(app, client, await _kept(app, client))
    # A change from what memory holds, but what the database holds already: nothing to record.
    response = await client.put(URL, json=choice(True), headers=admin())
    assert response.status_code == 200
    assert response.json()["revision"] == 2
    assert len(await all_history(client, SUBJECT)) == 2


async def test_a_precondition_on_lagging_memory_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    kept = await _kept(app, client)
    stale_tag = (await client.get(URL, headers=admin())).headers["etag"]
    await _lagging(app, client, kept)
    headers = {**admin(), "If-Match": stale_tag}
    response = await client.put(URL, json=choice(functional=True), headers=headers)
    assert_problem(response, 412, "precondition_failed")
    assert len(await all_history(client, SUBJECT)) == 2


async def test_a_subject_erased_while_memory_held_it_is_gone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    kept = await _kept(app, client)
    body = {"subject_id": SUBJECT, "reason": "account_deleted"}
    assert (await client.post("/v1/erasure-requests", json=body, headers=admin())).is_success
    state = app.state
    assert await run_once(state.settings, state.database, state.pseudonyms) == 1
    _hold(app, kept)
    response = await client.put(URL, json=choice(True), headers=admin())
    assert_problem(response, 410, "subject_erased")
    assert_problem(await client.get(f"{URL}/history", headers=admin()), 410, "subject_erased")
    async with state.database.reader() as reader:
        rows = await reader.pg_rows("SELECT 1 FROM consent_states WHERE subject_id = $1", SUBJECT)
    assert rows == []


async def test_a_precondition_the_database_meets_holds_though_memory_lags(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    kept = await _kept(app, client)
    assert (await client.put(URL, json=choice(True), headers=admin())).status_code == 200
    fresh_tag = (await client.get(URL, headers=admin())).headers["etag"]
    _hold(app, kept)
    headers = {**admin(), "If-Match": fresh_tag}
    response = await client.put(URL, json=choice(True, functional=True), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 3
    assert len(await all_history(client, SUBJECT)) == 3


async def test_the_learners_next_change_is_one_statement_too(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _kept(app, client)
    assert (await client.put(URL, json=choice(performance=True), headers=admin())).is_success
    async with _statements(app) as sent:
        response = await client.put(URL, json=choice(functional=True), headers=admin())
    assert response.status_code == 200
    assert response.json()["revision"] == 3
    assert len(sent) == 1, sent
    history = await all_history(client, SUBJECT)
    assert [record["categories"]["functional"] for record in history] == [True, False, False]
    verify_chain(history)


async def test_what_a_change_keeps_is_what_the_database_holds_after_its_own_notice(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _kept(app, client)
    cache: ConsentCache = app.state.consent_cache
    epoch = cache.epoch
    assert (await client.put(URL, json=choice(customization=True), headers=admin())).is_success
    await until(lambda: cache.epoch > epoch + 1)  # the commit counted, then its notice heard
    found, kept = cache.get(SUBJECT)
    assert found
    async with app.state.database.reader() as reader:
        stored, erased = await repository.read_state(
            reader, SUBJECT, (await app.state.pseudonyms.get()).of(SUBJECT)
        )
    assert not erased
    assert kept == stored
    assert kept is not None and kept.revision == 2
