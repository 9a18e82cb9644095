"""Active API keys kept in memory: filled only when safe, and revoked everywhere at once."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI

from consentry.coherent_cache import EVERYONE
from consentry.keys.cache import LISTENER_NAME, KeyCache
from consentry.keys.format import hash_key
from consentry.keys.repository import ActiveKey
from consentry.keys.service import revoke_everywhere
from tests.cli import Cli
from tests.helpers import bearer
from tests.replicas import replica, until

pytestmark = pytest.mark.anyio

_KEY = ActiveKey("id-1", "relay", frozenset({"consent:read"}))


def test_a_revocation_heard_drops_every_key() -> None:
    cache = KeyCache(10)
    cache.start()
    for key_hash in ("hash-1", "hash-2"):
        cache.fill(key_hash, _KEY, cache.epoch)
    cache.forget(EVERYONE)  # what the listener does with each revocation's notice
    assert [cache.get(key_hash)[0] for key_hash in ("hash-1", "hash-2")] == [False, False]


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
            assert other.state.key_cache.get(hash_key(key))[0]  # kept, not looked up

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
