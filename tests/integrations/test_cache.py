"""The connection cache: filled only when safe, and coherent across replicas (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from consentry.app import create_app
from consentry.integrations.cache import EVERYONE, ConnectionCache
from consentry.integrations.repository import Check, StoredConnection
from tests.conftest import make_settings
from tests.helpers import admin, bearer, user_token
from tests.integrations.support import declare

pytestmark = pytest.mark.anyio

LEARNER = "learner-cache-1"
CHECK = f"/v1/subjects/{LEARNER}/integrations/cloud-drive"


def _check(status: str = "approved") -> Check:
    connection = StoredConnection("cloud-drive", status, ["files.write"], "learner", None, None)
    return Check(integration_exists=True, erased=False, connection=connection)


def _listening(size: int = 10) -> ConnectionCache:
    cache = ConnectionCache(size)
    cache.listening = True
    return cache


def test_a_read_that_overlapped_a_change_of_its_learner_or_the_catalogue_is_not_kept() -> None:
    cache = _listening()
    for change in ("learner-1", EVERYONE):
        epoch = cache.epoch
        cache.forget(change)
        cache.fill("learner-1", "cloud-drive", _check(), epoch)
        assert cache.get("learner-1", "cloud-drive") is None
    epoch = cache.epoch
    cache.forget("learner-2")
    cache.fill("learner-1", "cloud-drive", found := _check(), epoch)
    assert cache.get("learner-1", "cloud-drive") == found
    cache.forget(EVERYONE)
    assert cache.get("learner-1", "cloud-drive") is None


def test_nothing_is_served_while_not_listening_and_the_oldest_learner_leaves_first() -> None:
    cache = _listening(size=2)
    for learner in ("a", "b"):
        cache.fill(learner, "x", _check(), cache.epoch)
    assert cache.get("a", "x") is not None  # "b" is now the least recently read
    cache.fill("c", "x", _check(), cache.epoch)
    assert [cache.get(learner, "x") is not None for learner in "abc"] == [True, False, True]
    cache.stop()
    assert cache.get("a", "x") is None


async def _until(condition: Callable[[], object], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        # The condition belongs to the listener task; polling it is all a test can do.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@asynccontextmanager
async def _replica(url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(make_settings(url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            await _until(lambda: app.state.connection_cache.listening)
            yield app, client


async def _status(client: httpx.AsyncClient) -> str:
    response = await client.get(CHECK, headers=admin())
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def test_a_change_through_another_replica_reaches_this_ones_cache(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the cache runs on PostgreSQL only")
    await declare(client)
    async with _replica(database_url) as (first, reader), _replica(database_url) as (_, writer):
        cache: ConnectionCache = first.state.connection_cache
        # Read until the read is kept: the catalogue write's own notice may arrive just after.
        async with asyncio.timeout(5):
            while True:
                assert await _status(reader) == "none"
                if cache.get(LEARNER, "cloud-drive") is not None:
                    break
                await asyncio.sleep(0.01)
        body = {"decision": "approve", "scopes": ["files.write"]}
        answer = await writer.put(CHECK, json=body, headers=bearer(user_token(LEARNER)))
        assert answer.status_code == 200
        # Delivered when the write commits: the entry goes before any read could miss it by much.
        await _until(lambda: cache.get(LEARNER, "cloud-drive") is None, seconds=2)
        assert await _status(reader) == "approved"
        # A removed integration is gone from every replica's memory too.
        removed = await writer.delete("/v1/integrations/cloud-drive", headers=admin())
        assert removed.status_code == 204
        await _until(lambda: cache.get(LEARNER, "cloud-drive") is None, seconds=2)
        assert (await reader.get(CHECK, headers=admin())).status_code == 404
