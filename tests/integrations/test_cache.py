"""The connection cache: filled only when safe, and coherent across replicas (PostgreSQL)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from fastapi import FastAPI

from consentry.integrations.cache import ConnectionCache
from consentry.integrations.repository import Check, StoredConnection
from tests.helpers import admin, bearer, user_token
from tests.integrations.support import declare
from tests.replicas import replica, until

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


def test_a_learners_checks_are_kept_together_and_dropped_together() -> None:
    cache = ConnectionCache(10)
    cache.start()
    cache.fill_check("learner-1", "cloud-drive", drive := _check(), cache.epoch)
    cache.fill_check("learner-1", "calendar", calendar := _check("declined"), cache.epoch)
    assert cache.check("learner-1", "cloud-drive") == drive
    assert cache.check("learner-1", "calendar") == calendar
    assert cache.check("learner-1", "roster") is None
    epoch = cache.epoch
    cache.forget("learner-1")  # a change of the learner's connections is heard mid-read
    cache.fill_check("learner-1", "roster", _check(), epoch)
    assert [cache.check("learner-1", i) for i in ("cloud-drive", "calendar", "roster")] == [
        None,
        None,
        None,
    ]


def test_a_body_is_made_again_for_any_other_check_object_only() -> None:
    cache = _listening()
    made: list[str] = []

    def render(text: str) -> bytes:
        made.append(text)
        return text.encode()

    kept, equal = _check(), _check()
    assert cache.body("learner-1", "cloud-drive", kept, lambda: render("first")) == b"first"
    assert cache.body("learner-1", "cloud-drive", kept, lambda: render("again")) == b"first"
    # An equal check read anew, or one of another learner or integration, is made afresh.
    assert cache.body("learner-1", "cloud-drive", equal, lambda: render("anew")) == b"anew"
    assert cache.body("learner-2", "cloud-drive", equal, lambda: render("other")) == b"other"
    assert cache.body("learner-1", "calendar", equal, lambda: render("calendar")) == b"calendar"
    assert made == ["first", "anew", "other", "calendar"]
    unkept = _listening(size=0)
    unkept.body("learner-1", "cloud-drive", kept, lambda: render("once"))
    assert unkept.body("learner-1", "cloud-drive", kept, lambda: render("twice")) == b"twice"


def test_the_least_recently_answered_body_leaves_first() -> None:
    cache = _listening(size=2)
    a, b, c = _check(), _check(), _check()
    cache.body("a", "cloud-drive", a, lambda: b"made")
    cache.body("b", "cloud-drive", b, lambda: b"made")
    cache.body("a", "cloud-drive", a, lambda: b"not made")  # "b" is the least recent now
    cache.body("c", "cloud-drive", c, lambda: b"made")
    assert cache.body("a", "cloud-drive", a, lambda: b"made again") == b"made"
    assert cache.body("b", "cloud-drive", b, lambda: b"made again") == b"made again"


def _replica(url: str) -> AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]:
    return replica(url, lambda app: bool(app.state.connection_cache.listening))


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
                if cache.check(LEARNER, "cloud-drive") is not None:
                    break
                await asyncio.sleep(0.01)
        body = {"decision": "approve", "scopes": ["files.write"]}
        answer = await writer.put(CHECK, json=body, headers=bearer(user_token(LEARNER)))
        assert answer.status_code == 200
        # Delivered when the write commits: the entry goes before any read could miss it by much.
        await until(lambda: cache.check(LEARNER, "cloud-drive") is None, seconds=2)
        assert await _status(reader) == "approved"
        # A removed integration is gone from every replica's memory too.
        removed = await writer.delete("/v1/integrations/cloud-drive", headers=admin())
        assert removed.status_code == 204
        await until(lambda: cache.check(LEARNER, "cloud-drive") is None, seconds=2)
        assert (await reader.get(CHECK, headers=admin())).status_code == 404
