"""The consent read cache: filled only when safe, and coherent across replicas (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from consentry.app import create_app
from consentry.consent.cache import ConsentCache
from consentry.consent.repository import StoredConsent
from consentry.db import LISTENER_NAME
from tests.conftest import _asyncpg_dsn, make_settings
from tests.helpers import admin, choice

pytestmark = pytest.mark.anyio


def _stored(revision: int) -> StoredConsent:
    return StoredConsent(
        revision=revision,
        categories={},
        policy_version="2026-11-01",
        region=None,
        language=None,
        updated_at=datetime.now(UTC),
        receipt_id="r",
        last_hash="h",
    )


def _listening(size: int = 10) -> ConsentCache:
    cache = ConsentCache(size)
    cache.listening = True
    return cache


def test_a_read_that_overlapped_a_change_to_its_subject_is_not_kept() -> None:
    cache = _listening()
    epoch = cache.epoch
    cache.forget("learner-1")  # the change is heard while the read is under way
    cache.fill("learner-1", _stored(1), epoch)
    assert cache.get("learner-1") == (False, None)


def test_a_read_that_overlapped_a_change_to_another_subject_is_kept() -> None:
    cache = _listening()
    epoch = cache.epoch
    cache.forget("learner-2")
    stored = _stored(1)
    cache.fill("learner-1", stored, epoch)
    assert cache.get("learner-1") == (True, stored)


def test_nothing_is_kept_or_served_while_not_listening() -> None:
    cache = _listening()
    cache.fill("learner-1", None, cache.epoch)
    assert cache.get("learner-1") == (True, None)  # "no record" is cached too
    epoch = cache.epoch
    cache.stop()
    assert cache.get("learner-1") == (False, None)
    cache.listening = True
    cache.fill("learner-1", _stored(1), epoch)  # began before the listener was lost
    assert cache.get("learner-1") == (False, None)


def test_the_least_recently_read_subject_leaves_first() -> None:
    cache = _listening(size=2)
    for subject in ("a", "b"):
        cache.fill(subject, None, cache.epoch)
    assert cache.get("a")[0]  # "b" is now the least recently read
    cache.fill("c", None, cache.epoch)
    assert [cache.get(subject)[0] for subject in ("a", "b", "c")] == [True, False, True]


@asynccontextmanager
async def _replica(url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(make_settings(url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            await _until(lambda: app.state.consent_cache.listening)
            yield app, client


async def _until(condition: Callable[[], object], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        # The condition belongs to the listener task; polling it is all a test can do.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


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
        await _until(lambda: not first.state.consent_cache.get(subject)[0], seconds=2)
        assert await _performance(reader, subject) is True


async def test_a_write_is_read_back_at_once_on_its_own_replica(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    _postgres(database_url)
    await _until(lambda: app.state.consent_cache.listening)
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
    await _until(lambda: cache.listening)
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
    await _until(lambda: not cache.get("learner-3")[0])
    await _until(lambda: cache.listening)  # it reconnects by itself
    await _read_into_cache(client, cache, "learner-3")
