"""Every request that writes begins exactly one transaction, and a failed one changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

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
