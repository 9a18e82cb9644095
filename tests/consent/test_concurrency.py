"""Writes to one subject are serialized: one winner per If-Match, and the chain never forks."""

from __future__ import annotations

import asyncio
from typing import cast

import httpx
import pytest
from fastapi import FastAPI

from consentry.auth import Caller
from consentry.consent import repository, service
from consentry.consent.schemas import ConsentUpdate
from tests.consent.test_history import all_history, verify_chain
from tests.helpers import admin, anon_id, choice

pytestmark = pytest.mark.anyio

WRITERS = 12


async def _race(client: httpx.AsyncClient, subject: str, etag: str) -> list[int]:
    async def put(i: int) -> int:
        body = choice(performance=bool(i % 2), functional=True, customization=bool(i % 3))
        response = await client.put(
            f"/v1/subjects/{subject}/consent", json=body, headers={"If-Match": etag}
        )
        return response.status_code

    return list(await asyncio.gather(*(put(i) for i in range(WRITERS))))


async def test_same_if_match_first_write(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    etag = (await client.get(f"/v1/subjects/{subject}/consent")).headers["etag"]
    statuses = await _race(client, subject, etag)
    assert sorted(statuses) == [200] + [412] * (WRITERS - 1)
    history = await all_history(client, subject)
    assert len(history) == 1
    verify_chain(history)


async def test_same_if_match_later_write(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    etag = (await client.put(f"/v1/subjects/{subject}/consent", json=choice())).headers["etag"]
    statuses = await _race(client, subject, etag)
    assert sorted(statuses) == [200] + [412] * (WRITERS - 1)
    assert len(await all_history(client, subject)) == 2


async def test_unconditional_writers_never_fork_the_chain(client: httpx.AsyncClient) -> None:
    subject = anon_id()

    async def put(i: int) -> httpx.Response:
        body = choice(performance=bool(i % 2), functional=bool(i % 4 < 2))
        return await client.put(f"/v1/subjects/{subject}/consent", json=body)

    responses = await asyncio.gather(*(put(i) for i in range(WRITERS)))
    assert {r.status_code for r in responses} == {200}
    history = await all_history(client, subject)
    verify_chain(history)
    final = (await client.get(f"/v1/subjects/{subject}/consent")).json()
    assert final["revision"] == len(history)
    assert final["receipt_id"] == history[0]["id"]


# Long enough for a write that does not wait to have answered; it proves only that one waits.
STILL_WAITING = 0.3


async def test_a_write_whose_state_moved_on_before_it_wrote_is_decided_again(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE makes every write the only writer")
    subject = anon_id()
    url = f"/v1/subjects/{subject}/consent"
    await client.put(url, json=choice())
    pseudonyms = await app.state.pseudonyms.get()
    async with app.state.database.unit_of_work() as uow:
        await repository.lock_state(uow, subject, pseudonyms.of(subject))
        # It reads revision 1 without waiting, then waits for the row to write revision 2.
        task = asyncio.create_task(client.put(url, json=choice(performance=True)))
        await asyncio.sleep(STILL_WAITING)
        assert not task.done()
        meanwhile = service.ConsentChange(
            choice=ConsentUpdate.model_validate(choice(functional=True)),
            categories=cast(dict[str, bool], choice(functional=True)["categories"]),
            caller=Caller(kind="key", name="admin", key_id="admin"),
            facts=service.RequestFacts(region=None, gpc=False, ip=None, user_agent=None),
            if_match=None,
        )
        await service.record_choice(
            uow, app.state.policy, pseudonyms, app.state.consent_cache, subject, meanwhile
        )
    response = await task
    assert response.status_code == 200
    # Decided again on revision 2: the whole choice it names, on top of the one made meanwhile.
    assert response.json()["revision"] == 3
    history = await all_history(client, subject)
    assert [r["changed"] for r in history] == [["performance", "functional"], ["functional"], []]
    verify_chain(history)
    final = await client.get(url, headers=admin())
    assert final.json()["categories"]["performance"]["granted"] is True
    assert final.json()["categories"]["functional"]["granted"] is False
