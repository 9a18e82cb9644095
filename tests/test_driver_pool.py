"""The pool on PostgreSQL hands out connections in the order they were asked for."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from consentry.app import create_app
from consentry.db import dialect_of, open_database
from tests.conftest import make_settings
from tests.events.support import post
from tests.helpers import admin, bearer, choice, event, make_key
from tests.test_errors import assert_problem

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


async def test_a_request_waits_for_a_connection_at_most_the_database_timeout(
    database_url: str,
) -> None:
    """Every connection held elsewhere: 503 after CONSENTRY_DATABASE_TIMEOUT_SECONDS, not a hang."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the driver pool is PostgreSQL's")
    settings = make_settings(database_url, database_pool_size=2, database_timeout_seconds=0.5)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            key = await make_key(app, "ingest", "events:write")
            fresh = f"/v1/subjects/learner-{uuid.uuid4().hex[:8]}/consent"
            database = app.state.database
            async with database.reader(), database.reader():
                # Far above the bound: it fails the test rather than hanging it.
                async with asyncio.timeout(20):
                    responses = [
                        await client.get(fresh, headers=admin()),
                        await client.put(fresh, json=choice(), headers=admin()),
                        await post(client, [event("learner-x")], headers=bearer(key)),
                    ]
            for response in responses:
                assert_problem(response, 503, "service_unavailable")
                assert int(response.headers["retry-after"]) > 0
            # Once a connection is free again, so is the service.
            assert (await client.get(fresh, headers=admin())).status_code == 200
