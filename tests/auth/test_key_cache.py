"""Active API keys kept in memory: filled only when safe, and revoked everywhere at once."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI

from consentry.keys.cache import LISTENER_NAME, KeyCache
from consentry.keys.format import hash_key
from consentry.keys.repository import ActiveKey
from consentry.keys.service import revoke_everywhere
from tests.cli import Cli
from tests.helpers import bearer
from tests.replicas import replica, until

pytestmark = pytest.mark.anyio

_KEY = ActiveKey("id-1", "relay", frozenset({"consent:read"}))


def _listening(size: int = 10) -> KeyCache:
    cache = KeyCache(size)
    cache.start()
    return cache


def test_a_lookup_that_overlapped_a_revocation_is_not_kept() -> None:
    cache = _listening()
    epoch = cache.epoch
    cache.forget()  # a revocation is heard while the lookup is under way
    cache.fill("hash-1", _KEY, epoch)
    assert cache.get("hash-1") is None


def test_a_revocation_drops_every_key() -> None:
    cache = _listening()
    cache.fill("hash-1", _KEY, cache.epoch)
    assert cache.get("hash-1") == _KEY
    cache.forget()
    assert cache.get("hash-1") is None


def test_nothing_is_kept_or_served_while_not_listening() -> None:
    cache = _listening()
    cache.fill("hash-1", _KEY, cache.epoch)
    epoch = cache.epoch
    cache.stop()
    assert cache.get("hash-1") is None
    cache.fill("hash-2", _KEY, cache.epoch)
    cache.start()
    assert cache.get("hash-1") is None  # kept before the listener was lost
    assert cache.get("hash-2") is None  # filled while nothing listened
    cache.fill("hash-3", _KEY, epoch)  # began before the listener was lost
    assert cache.get("hash-3") is None


def test_the_least_recently_used_key_leaves_first() -> None:
    cache = _listening(size=2)
    for key_hash in ("a", "b"):
        cache.fill(key_hash, _KEY, cache.epoch)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.fill("c", _KEY, cache.epoch)
    assert [cache.get(key_hash) is not None for key_hash in ("a", "b", "c")] == [True, False, True]


def _keeps_keys(app: FastAPI) -> bool:
    return bool(app.state.key_cache.listening)


async def _status(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/v1/subjects/learner-1/consent", headers=bearer(key))).status_code


async def test_a_revoked_key_is_refused_by_every_replica_once_revoking_returns(
    cli: Cli, app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the cache runs on PostgreSQL only")
    created = await cli("keys", "create", "--name", "relay", "--scope", "consent:read")
    assert created.code == 0, created.err
    key = created.out.strip()
    async with AsyncExitStack() as stack:
        replicas = [(app, client)]
        for _ in range(2):
            replicas.append(await stack.enter_async_context(replica(database_url, _keeps_keys)))
        await until(lambda: _keeps_keys(app))
        for other, replica_client in replicas:
            assert await _status(replica_client, key) == 200
            assert other.state.key_cache.get(hash_key(key)) is not None  # kept, not looked up

        revoked = await cli("keys", "revoke", "relay")

        assert revoked.code == 0, revoked.err
        for _, replica_client in replicas:
            assert await _status(replica_client, key) == 401


async def test_revoking_waits_for_every_process_that_keeps_keys(
    cli: Cli, app: FastAPI, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the cache runs on PostgreSQL only")
    created = await cli("keys", "create", "--name", "relay", "--scope", "consent:read")
    assert created.code == 0, created.err
    await until(lambda: _keeps_keys(app))
    # A process that listens for revocations but never says it dropped its keys.
    silent = await app.state.database.listener(LISTENER_NAME)
    try:
        await revoke_everywhere(app.state.database, "relay", wait=0.2)
    finally:
        silent.terminate()
    assert "1 of 2 processes did not confirm in time" in caplog.text
