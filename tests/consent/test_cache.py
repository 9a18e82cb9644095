"""The consent read cache: filled only when safe, and coherent across replicas (PostgreSQL)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from consentry.consent.cache import ConsentCache
from consentry.db import LISTENER_NAME
from tests.conftest import _asyncpg_dsn
from tests.helpers import admin, choice
from tests.replicas import replica, until

pytestmark = pytest.mark.anyio


def _replica(url: str) -> AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]:
    return replica(url, lambda app: bool(app.state.consent_cache.listening))


async def _read_into_cache(client: httpx.AsyncClient, cache: ConsentCache, subject: str) -> None:
    """Read until the read is kept: a write's own notice may arrive just after and evict it."""

    async def attempt() -> bool:
        await _performance(client, subject)
        return cache.get(subject)[0]

    async with asyncio.timeout(5):
        while not await attempt():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def _postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("the cache runs on PostgreSQL only")
    return database_url


async def _performance(client: httpx.AsyncClient, subject: str) -> bool:
    response = await client.get(f"/v1/subjects/{subject}/consent", headers=admin())
    granted: bool = response.json()["categories"]["performance"]["granted"]
    return granted


async def test_a_change_through_another_replica_reaches_this_ones_cache(
    app: FastAPI, database_url: str
) -> None:
    url = _postgres(database_url)
    async with _replica(url) as (first, reader), _replica(url) as (_, writer):
        subject = "learner-1"
        await writer.put(f"/v1/subjects/{subject}/consent", json=choice(), headers=admin())
        await _read_into_cache(reader, first.state.consent_cache, subject)
        assert await _performance(reader, subject) is False  # served from memory
        put = choice(performance=True)
        response = await writer.put(f"/v1/subjects/{subject}/consent", json=put, headers=admin())
        assert response.status_code == 200
        # Delivered when the write commits: the entry goes before any read could miss it by much.
        await until(lambda: not first.state.consent_cache.get(subject)[0], seconds=2)
        assert await _performance(reader, subject) is True


async def test_a_write_is_read_back_at_once_on_its_own_replica(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    _postgres(database_url)
    await until(lambda: app.state.consent_cache.listening)
    subject = "learner-2"
    await client.put(f"/v1/subjects/{subject}/consent", json=choice(), headers=admin())
    assert await _performance(client, subject) is False
    await client.put(
        f"/v1/subjects/{subject}/consent", json=choice(performance=True), headers=admin()
    )
    assert await _performance(client, subject) is True


async def test_a_lost_listener_turns_the_cache_off_until_it_listens_again(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    url = _postgres(database_url)
    cache: ConsentCache = app.state.consent_cache
    await until(lambda: cache.listening)
    await client.put("/v1/subjects/learner-3/consent", json=choice(), headers=admin())
    await _read_into_cache(client, cache, "learner-3")
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        ended = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            LISTENER_NAME,
        )
    finally:
        await connection.close()
    assert ended == 1
    # It may listen again within milliseconds, but never with what it held before.
    await until(lambda: not cache.get("learner-3")[0])
    await until(lambda: cache.listening)  # it reconnects by itself
    await _read_into_cache(client, cache, "learner-3")


async def test_a_change_through_another_replica_drops_what_this_one_kept_of_its_own(
    app: FastAPI, database_url: str
) -> None:
    url = _postgres(database_url)
    async with _replica(url) as (first, own), _replica(url) as (_, other):
        subject, cache = "learner-4", first.state.consent_cache
        consent = f"/v1/subjects/{subject}/consent"
        await own.put(consent, json=choice(), headers=admin())
        epoch = cache.epoch
        await own.put(consent, json=choice(performance=True), headers=admin())
        await until(lambda: cache.epoch > epoch + 1)  # kept, and its own notice heard
        assert cache.get(subject)[0]
        response = await other.put(consent, json=choice(functional=True), headers=admin())
        assert response.status_code == 200
        await until(lambda: not cache.get(subject)[0], seconds=2)
        body = (await own.get(consent, headers=admin())).json()
        assert body["revision"] == 3
        assert body["categories"]["functional"]["granted"] is True
