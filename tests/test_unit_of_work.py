"""Every request that writes begins exactly one transaction, and a failed one changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import bindparam, delete, select, text

from consentry.db import Database
from consentry.pseudonyms import ServiceSecret
from tests.helpers import admin, choice, user_token

pytestmark = pytest.mark.anyio


def _event(subject_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "subject_id": subject_id,
        "category": "necessary",
        "name": "lesson.viewed",
        "occurred_at": "2026-11-28T12:00:00Z",
    }


def _provider(provider_id: str) -> dict[str, Any]:
    return {
        "id": provider_id,
        "name": "Video delivery",
        "kind": "technology",
        "purpose": "Streams course videos.",
        "data_shared": ["ip_address"],
        "category": "necessary",
        "countries": ["US"],
        "transfer_mechanism": "SCC",
        "opt_out_url": None,
    }


async def _transactions_of(app: FastAPI, client: httpx.AsyncClient, *request: Any) -> int:
    method, url, kwargs = request
    before = app.state.database.transactions
    response = await client.request(method, url, **kwargs)
    assert response.status_code < 300, response.text
    return int(app.state.database.transactions - before)


async def test_each_write_begins_one_transaction(app: FastAPI, client: httpx.AsyncClient) -> None:
    await app.state.pseudonyms.get()  # a development key is made once, in its own transaction
    learner = "u-" + uuid.uuid4().hex
    own = {"Authorization": f"Bearer {user_token(learner)}"}
    writes = [
        ("PUT", f"/v1/subjects/{learner}/consent", {"json": choice(True), "headers": admin()}),
        (
            "PATCH",
            f"/v1/subjects/{learner}/consent",
            {"json": {**choice(), "categories": {"functional": True}}, "headers": own},
        ),
        ("POST", "/v1/events", {"json": {"events": [_event(learner)]}, "headers": admin()}),
        (
            "POST",
            "/v1/providers",
            {"json": _provider("video-" + learner[2:10]), "headers": admin()},
        ),
        ("POST", "/v1/erasure-requests", {"json": {"subject_id": learner}, "headers": admin()}),
    ]
    for write in writes:
        assert await _transactions_of(app, client, *write) == 1, write[:2]


async def test_a_refused_write_rolls_back(app: FastAPI, client: httpx.AsyncClient) -> None:
    learner = "u-" + uuid.uuid4().hex
    url = f"/v1/subjects/{learner}/consent"
    stale_tag = '"r0-0000000000000000"'
    refused = await client.put(url, json=choice(True), headers={**admin(), "If-Match": stale_tag})
    # The lock placeholder the write took is gone with its transaction.
    assert refused.status_code == 412
    history = await client.get(f"{url}/history", headers=admin())
    assert history.json()["items"] == []
    state = await client.get(url, headers=admin())
    assert state.json()["revision"] == 0


async def test_a_body_refused_by_validation_begins_no_transaction(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    before = app.state.database.transactions
    refused = await client.post("/v1/providers", json={"id": "x"}, headers=admin())
    assert refused.status_code == 422
    assert app.state.database.transactions == before


# A statement that makes its whole change or none, and returns a row only when it made it.
_KEEP_SECRET = (
    "INSERT INTO service_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    " RETURNING name"
)
_SECRET = select(ServiceSecret.value).where(ServiceSecret.name == bindparam("name"))


async def _secret(database: Database, name: str) -> str | None:
    async with database.reader() as reader:
        value: str | None = await reader.scalar(_SECRET, {"name": name})
        return value


def _postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a statement of its own is PostgreSQL's (SQLite begins every write at once)")


async def test_a_statement_that_made_its_whole_change_commits_alone(
    app: FastAPI, database_url: str
) -> None:
    _postgres(database_url)
    database: Database = app.state.database
    before = database.transactions
    heard: list[str] = []

    async def change_then_fail() -> None:
        async with database.unit_of_work() as uow:
            uow.on_commit(lambda: heard.append("committed"))
            uow.on_rollback(lambda: heard.append("rolled back"))
            assert await uow.pg_all_or_nothing(_KEEP_SECRET, "alone", "1")
            # Committed as it returned: others see it before the block ends.
            assert await _secret(database, "alone") == "1"
            with pytest.raises(RuntimeError):
                await uow.execute(delete(ServiceSecret))
            raise LookupError("a failure after the change does not undo it")

    with pytest.raises(LookupError):
        await change_then_fail()
    assert await _secret(database, "alone") == "1"
    assert heard == ["committed"]
    assert database.transactions - before == 1


async def test_work_for_after_the_commit_runs_as_soon_as_it_returns(
    app: FastAPI, database_url: str
) -> None:
    _postgres(database_url)
    database: Database = app.state.database
    heard: list[str] = []
    async with database.unit_of_work() as uow:
        assert await uow.pg_all_or_nothing(_KEEP_SECRET, "at-once", "1")
        uow.on_commit(lambda: heard.append("after the statement that committed"))
        assert heard == ["after the statement that committed"]
    async with database.unit_of_work() as uow:
        await uow.execute(delete(ServiceSecret).where(ServiceSecret.name == "at-once"))
        uow.on_commit(lambda: heard.append("after the commit"))
        # Before the connection goes back to the pool: its server process is still this one's.
        uow.on_commit(lambda: heard.append(f"on {uow.server_process > 0} server process"))
        assert heard == ["after the statement that committed"]
    assert heard[1:] == ["after the commit", "on True server process"]


async def test_a_statement_that_changed_nothing_leaves_the_unit_of_work_going_on(
    app: FastAPI, database_url: str
) -> None:
    _postgres(database_url)
    database: Database = app.state.database
    async with database.unit_of_work() as uow:
        await uow.pg_all_or_nothing(_KEEP_SECRET, "kept", "1")

    async def nothing_then_fail() -> None:
        async with database.unit_of_work() as uow:
            assert await uow.pg_all_or_nothing(_KEEP_SECRET, "kept", "2") == []
            assert not uow.begun
            await uow.execute(delete(ServiceSecret).where(ServiceSecret.name == "kept"))
            assert uow.begun
            raise LookupError("rolls back what followed")

    with pytest.raises(LookupError):
        await nothing_then_fail()
    assert await _secret(database, "kept") == "1"


async def test_a_read_ahead_begins_no_transaction_on_postgresql_only(app: FastAPI) -> None:
    database: Database = app.state.database
    before = database.transactions
    async with database.unit_of_work() as uow:
        assert await uow.read_ahead(_SECRET, {"name": "absent"}) == []
        began = uow.begun
    # SQLite's BEGIN IMMEDIATE makes the read hold until the write; PostgreSQL's write checks it.
    assert began is (database.dialect == "sqlite")
    assert database.transactions - before == int(began)


async def test_a_statement_sent_with_begin_holds_to_the_end_and_rolls_back_with_it(
    app: FastAPI,
) -> None:
    database = app.state.database
    if database.dialect != "postgresql":
        pytest.skip("only PostgreSQL's statements go with BEGIN")
    locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
    async with database.unit_of_work() as uow:
        await uow.pg_begin_with("SELECT pg_advisory_xact_lock_shared(4242)")
        async with database.reader() as other:
            assert await other.scalar(text(locks)) == 1
    async with database.reader() as other:
        assert await other.scalar(text(locks)) == 0
    # A first statement that fails fails the unit of work, and leaves nothing open behind it.
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with database.unit_of_work() as uow:
            await uow.pg_begin_with("SELECT pg_advisory_xact_lock_shared(4242), 1 / 0")
    async with database.reader() as other:
        assert await other.scalar(text(locks)) == 0
        assert await other.scalar(text("SELECT 1")) == 1
    assert database.connections()[0] == 0
