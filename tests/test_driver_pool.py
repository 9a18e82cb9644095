"""The pool on PostgreSQL hands out connections in the order they were asked for."""

from __future__ import annotations

import asyncio

import pytest

from consentry.db import dialect_of, open_database
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


async def test_a_waiting_request_is_not_overtaken_by_newcomers(database_url: str) -> None:
    """Under load, requests that arrive while a connection is being released must queue.

    The pool's own queue lets them take it, and sends the request that was waiting to the
    back each time: that made a few consent writes wait hundreds of milliseconds.
    """
    if dialect_of(database_url) != "postgresql":
        pytest.skip("the driver's pool is PostgreSQL's")
    database = await open_database(make_settings(database_url, database_pool_size=1))
    order: list[str] = []

    async def take(name: str) -> None:
        async with database.reader():
            order.append(name)

    newcomers: list[asyncio.Task[None]] = []

    def arrive() -> None:
        # Run by the loop just before the release: these start in the middle of it.
        newcomers.extend(asyncio.create_task(take(f"newcomer-{i}")) for i in range(3))

    try:
        async with database.reader():
            waiting = asyncio.create_task(take("waiting"))
            await asyncio.sleep(0.05)  # it is queued behind the connection held here
            asyncio.get_running_loop().call_soon(arrive)
        await asyncio.gather(waiting, *newcomers)
    finally:
        await database.dispose()
    assert order[0] == "waiting", order
