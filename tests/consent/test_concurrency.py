"""Writes to one subject are serialized: one winner per If-Match, and the chain never forks."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.consent.test_history import all_history, verify_chain
from tests.helpers import anon_id, choice

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
