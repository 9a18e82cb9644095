"""The database goes away under load and comes back: 503s meanwhile, then recovery by itself.

A proxy between a real `consentry serve` and PostgreSQL is cut and restored; the shared server
itself is never touched. Two kinds of cut: connections reset (the server is down, or a firewall
rejects), and packets black-holed (a partition: nothing answers, nothing is refused).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from consentry.app import create_app
from consentry.db import LISTENER_NAME
from tests.conftest import _asyncpg_dsn, make_settings
from tests.faults.load import CLIENT_TIMEOUT, Load, batch, create_events_key, stored_ids
from tests.faults.polling import until
from tests.faults.proxy import Cut, proxy_to
from tests.helpers import ADMIN_KEY, admin, bearer, choice
from tests.processes import environment, server_process
from tests.test_errors import assert_problem

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql_only]

# Short, so that a black-holed connection gives up quickly in the test; the default is 10.
TIMEOUT_SECONDS = "2"


def assert_unavailable(response: httpx.Response) -> None:
    """503 service_unavailable as problem+json, telling the client when to try again."""
    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) > 0


async def _performance(client: httpx.AsyncClient, subject: str) -> bool:
    response = await client.get(f"/v1/subjects/{subject}/consent", headers=admin())
    assert response.status_code == 200, response.text
    granted: bool = response.json()["categories"]["performance"]["granted"]
    return granted


@asynccontextmanager
async def _direct(pg_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process on the database directly, as another replica would be."""
    app = create_app(make_settings(pg_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            yield client


async def _listeners(pg_url: str) -> int:
    """The consent-cache listeners connected to the database (seen by PostgreSQL itself)."""
    connection = await asyncpg.connect(_asyncpg_dsn(pg_url), timeout=10)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
            LISTENER_NAME,
            make_url(pg_url).database,
        )
    finally:
        await connection.close()
    return count


async def _probe_during_cut(
    client: httpx.AsyncClient, key: str, cached: str, how: Cut
) -> list[str]:
    """Every kind of route while the database is away; the ids of the batch it tried to post."""
    fresh = f"learner-{uuid.uuid4().hex[:8]}"
    ids = [str(uuid.uuid4()) for _ in range(10)]
    consent = f"/v1/subjects/{fresh}/consent"
    responses = await asyncio.gather(
        client.get("/readyz"),
        client.get(consent, headers=admin()),
        client.put(consent, json=choice(performance=True), headers=admin()),
        client.post("/v1/events", json=batch(ids), headers=bearer(key)),
        client.get("/v1/audit-log", headers=admin()),
        client.get("/v1/erasure-requests", headers=admin()),
        client.get(f"/v1/subjects/{fresh}/consent/history", headers=admin()),
    )
    for response in responses:
        assert_unavailable(response)
    assert (await client.get("/healthz")).status_code == 200
    read = await client.get(f"/v1/subjects/{cached}/consent", headers=admin())
    if how == "reset":
        # The listener's connection was reset too: the cache is off, nothing served from memory.
        assert_unavailable(read)
    else:
        # A silent partition is noticed by the listener's health check within seconds; until
        # then a cached read may still be served, never anything but the cached value or a 503.
        if read.status_code == 200:
            assert read.json()["categories"]["performance"]["granted"] is False
        else:
            assert_unavailable(read)
    return ids


def _outcomes(load: Load) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for attempt in load.attempts:
        counts[attempt.status or attempt.error] = counts.get(attempt.status or attempt.error, 0) + 1
    return counts


@pytest.mark.parametrize("how", ["reset", "blackhole"])
async def test_a_database_cut_answers_503_then_recovers_with_no_acknowledged_event_lost(
    pg_url: str, tmp_path: Path, how: Cut
) -> None:
    key = await create_events_key(pg_url)
    subject = f"learner-{uuid.uuid4().hex[:8]}"
    with proxy_to(pg_url) as proxy:
        env = environment(
            CONSENTRY_DATABASE_URL=proxy.url(pg_url),
            CONSENTRY_DATABASE_TIMEOUT_SECONDS=TIMEOUT_SECONDS,
            CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        )
        with server_process(env, tmp_path / "serve.log", "--no-migrate") as server:
            async with httpx.AsyncClient(base_url=server.base, timeout=CLIENT_TIMEOUT) as client:
                put = await client.put(
                    f"/v1/subjects/{subject}/consent", json=choice(), headers=admin()
                )
                assert put.status_code == 200, put.text
                assert await _performance(client, subject) is False  # now cached
                await until(lambda: _has_listener(pg_url), "the cache listens")

                load = Load(server.base, key, clients=4, batch_size=100)
                async with load.running() as running:
                    await load.wait_answered(10)
                    proxy.cut(how)
                    load.mark()
                    cut_batch = await _probe_during_cut(client, key, subject, how)
                    await load.wait_answered(4, status=503)
                    load.stop()
                    await asyncio.wait_for(running, 30)

                proxy.restore()

                async def ready() -> bool:
                    return (await client.get("/readyz")).status_code == 200

                await until(ready, "ready again after the database returned")
                await until(lambda: _has_listener(pg_url), "the cache listens again")
                # The hot paths' pool and the engine both serve again.
                after = [str(uuid.uuid4()) for _ in range(50)]
                posted = await client.post("/v1/events", json=batch(after), headers=bearer(key))
                assert posted.status_code == 200, posted.text
                assert posted.json()["accepted"] == len(after)
                assert await stored_ids(pg_url, after) == set(after)
                log = await client.get("/v1/audit-log", headers=admin())
                assert log.status_code == 200, log.text
                # Coherent again: a change made elsewhere reaches this process's reads, which
                # the listener makes drop what they cached meanwhile.
                assert await _performance(client, subject) is False
                async with _direct(pg_url) as replica:
                    changed = await replica.put(
                        f"/v1/subjects/{subject}/consent",
                        json=choice(performance=True),
                        headers=admin(),
                    )
                    assert changed.status_code == 200, changed.text

                async def changed_seen() -> bool:
                    return await _performance(client, subject)

                await until(changed_seen, "the change made elsewhere is read", seconds=5)

                committed_unanswered = await _assert_nothing_lost(pg_url, load, cut_batch)
                await _retry_unanswered(client, key, load, cut_batch)

            # Stopped while the database is away again, the server still shuts down by itself:
            # connections the database no longer answers on are dropped, not waited on one by one.
            proxy.cut(how)
            server.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.process.wait, 30)

    output = (tmp_path / "serve.log").read_text()
    assert code == 0, output
    assert "Application shutdown complete." in output, output
    assert "unhandled error" not in output and "Traceback" not in output, output
    everything = [event_id for a in load.attempts for event_id in a.ids] + cut_batch
    assert await stored_ids(pg_url, everything) == set(everything)
    print(
        f"{how}: outcomes {_outcomes(load)}; {committed_unanswered} batches answered 503 "
        "had committed before the cut took their answer"
    )


async def _has_listener(pg_url: str) -> bool:
    return await _listeners(pg_url) == 1


async def _retry_unanswered(
    client: httpx.AsyncClient, key: str, load: Load, cut_batch: list[str]
) -> None:
    """Post again, as a client does, every batch not answered 200; each must now be taken."""
    batches = [a.ids for a in load.attempts if a.status != 200] + [cut_batch]
    for ids in batches:
        response = await client.post("/v1/events", json=batch(ids), headers=bearer(key))
        assert response.status_code == 200, response.text
        statuses = {r["status"] for r in response.json()["results"]}
        # A batch whose commit made it before its answer was lost comes back as duplicates.
        assert statuses <= {"accepted", "duplicate"}, statuses


async def _assert_nothing_lost(pg_url: str, load: Load, cut_batch: list[str]) -> int:
    """Answers were 200 or 503, never 500 and never a hang; every accepted event is kept, and a
    batch answered 503 was written whole or not at all. Returns how many were written whole."""
    outcomes = _outcomes(load)
    assert set(outcomes) <= {200, 503}, outcomes
    assert outcomes.get(503, 0) > 0 and outcomes[200] > 0, outcomes
    acknowledged = [event_id for attempt in load.attempts for event_id in attempt.accepted_ids]
    assert len(acknowledged) == outcomes[200] * load.batch_size
    assert await stored_ids(pg_url, acknowledged) == set(acknowledged)
    whole = 0
    for ids in [a.ids for a in load.attempts if a.status == 503] + [cut_batch]:
        kept = await stored_ids(pg_url, ids)
        assert kept in (set(), set(ids)), f"{len(kept)} of {len(ids)} events of a 503 batch kept"
        whole += kept == set(ids)
    for attempt in load.attempts:
        if attempt.status == 503:
            assert attempt.content_type == "application/problem+json"
            assert attempt.body is not None
            assert attempt.body["code"] == "service_unavailable"
        else:
            assert attempt.body is not None and attempt.body["accepted"] == len(attempt.ids)
    return whole


async def test_a_request_that_waits_too_long_for_a_connection_answers_503(pg_url: str) -> None:
    """A database too slow to free a pooled connection in time is unavailable, not an error."""
    app = create_app(make_settings(pg_url, database_pool_size=1, database_timeout_seconds=0.5))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
            app.state.database.reader() as held,  # the pool's only connection
        ):
            await held.scalar(text("SELECT 1"))
            response = await client.get("/v1/audit-log", headers=admin())
    assert_unavailable(response)
