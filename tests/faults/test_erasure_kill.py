"""A worker killed half-way through an erasure: nothing is half-erased, and the next run finishes
it with the same result as an erasure that was never interrupted."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from consentry.app import create_app
from consentry.privacy.erasure import LEASE
from consentry.privacy.worker import run_once
from tests.conftest import _asyncpg_dsn, make_settings
from tests.faults.polling import until
from tests.helpers import admin, choice, event
from tests.processes import CONSENTRY, environment

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql_only]

VICTIM = "learner-killed-9d41"
TWIN = "learner-twin-5e27"
# What the erasure has changed by the time it writes its audit row, its last statement.
ERASURE_WRITES = {"events", "consent_states", "consent_records", "tombstones", "erasure_requests"}


@pytest.fixture
async def app(pg_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(pg_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.23", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _learner(client: httpx.AsyncClient, subject: str) -> None:
    """Two consent records with an address and an agent, a current state, five events."""
    headers = {**admin(), "User-Agent": f"agent-of-{subject}"}
    for performance in (True, False):
        body = choice(performance=performance, functional=True)
        put = await client.put(f"/v1/subjects/{subject}/consent", json=body, headers=headers)
        assert put.status_code == 200, put.text
    events = [event(subject, properties={"who": subject}) for _ in range(4)]
    events.append(event(subject, "functional"))
    posted = await client.post("/v1/events", json={"events": events}, headers=admin())
    assert posted.json()["accepted"] == 5, posted.text


async def _request(client: httpx.AsyncClient, subject: str) -> str:
    body = {"subject_id": subject, "reason": "account_deleted"}
    response = await client.post("/v1/erasure-requests", json=body, headers=admin())
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


async def _state(connection: asyncpg.Connection, subject: str, subject_hash: str) -> dict[str, Any]:
    """Everything an erasure changes about a subject, as PostgreSQL holds it now."""

    async def count(table: str, *subject_ids: str) -> int:
        value: int = await connection.fetchval(
            f"SELECT count(*) FROM {table} WHERE subject_id = ANY($1::text[])", subject_ids
        )
        return value

    request = await connection.fetchrow(
        "SELECT status, attempts, subject_id IS NULL AS unnamed, deleted, completed_at,"
        " retained_until FROM erasure_requests WHERE subject_hash = $1",
        subject_hash,
    )
    completed_at = request["completed_at"]
    audit = await connection.fetch(
        "SELECT action, details FROM audit_log WHERE subject_hash = $1 ORDER BY id", subject_hash
    )
    records = await connection.fetch(
        "SELECT ip, user_agent, retained_until FROM consent_records"
        " WHERE subject_id = $1 OR subject_hash = $2 ORDER BY seq",
        subject,
        subject_hash,
    )
    tombstone = await connection.fetchval(
        "SELECT erased_at FROM tombstones WHERE subject_hash = $1", subject_hash
    )

    def since_completion(moment: datetime | None) -> timedelta | None:
        return moment - completed_at if moment is not None and completed_at else None

    return {
        "events": await count("events", subject, subject_hash),
        "consent_states": await count("consent_states", subject, subject_hash),
        "records_named": await count("consent_records", subject),
        "records": [
            (row["ip"] is not None, row["user_agent"] is not None, since_completion(row[2]))
            for row in records
        ],
        "tombstone": since_completion(tombstone) if tombstone else None,
        "request": (
            request["status"],
            request["unnamed"],
            json.loads(request["deleted"]) if request["deleted"] else None,
            since_completion(request["retained_until"]),
        ),
        "attempts": request["attempts"],
        "audit": [
            (row["action"], {k: v for k, v in json.loads(row["details"]).items() if k != "attempt"})
            for row in audit
        ],
    }


async def _blocked_audit_insert(connection: asyncpg.Connection) -> int | None:
    """The backend waiting to write its audit row behind the test's lock, if one is."""
    pid: int | None = await connection.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO audit_log%'"
    )
    return pid


async def _written_by(connection: asyncpg.Connection, pid: int) -> set[str]:
    """The tables a backend has written in its open transaction (it holds their write lock)."""
    rows = await connection.fetch(
        "SELECT relation::regclass::text AS name FROM pg_locks"
        " WHERE pid = $1 AND granted AND mode = 'RowExclusiveLock' AND relation IS NOT NULL",
        pid,
    )
    return {row["name"] for row in rows}


async def test_a_killed_erasure_is_not_half_done_and_the_next_run_finishes_it_the_same(
    app: FastAPI, client: httpx.AsyncClient, pg_url: str, tmp_path: Path
) -> None:
    pseudonyms = await app.state.pseudonyms.get()
    hashes = {subject: pseudonyms.of(subject) for subject in (VICTIM, TWIN)}
    for subject in (VICTIM, TWIN):
        await _learner(client, subject)
    victim_request = await _request(client, VICTIM)

    observer = await asyncpg.connect(_asyncpg_dsn(pg_url))
    locker = await asyncpg.connect(_asyncpg_dsn(pg_url))
    try:
        before = await _state(observer, VICTIM, hashes[VICTIM])
        assert before["events"] == 5 and before["consent_states"] == 1
        assert before["records"] == [(True, True, None), (True, True, None)]

        # The audit log is written last, in the erasure's transaction: hold it, and the worker
        # stops there with everything else of the erasure done but not committed.
        hold = locker.transaction()
        await hold.start()
        await locker.execute("LOCK TABLE audit_log IN SHARE MODE")
        env = environment(CONSENTRY_DATABASE_URL=pg_url)
        log = tmp_path / "worker.log"
        with (
            log.open("wb") as output,
            subprocess.Popen(  # noqa: ASYNC220  # started, then only signalled
                [*CONSENTRY, "worker"], env=env, stdout=output, stderr=output
            ) as worker,
        ):
            try:

                async def blocked() -> bool:
                    return await _blocked_audit_insert(observer) is not None

                await until(blocked, "the worker reached the audit row of the erasure")
                pid = await _blocked_audit_insert(observer)
                assert pid is not None
                assert await _written_by(observer, pid) >= ERASURE_WRITES
                worker.send_signal(signal.SIGKILL)
            finally:
                worker.kill()
                code = await asyncio.to_thread(worker.wait, 30)
        assert code == -signal.SIGKILL

        # Right after the kill: the erasure's writes are invisible, the request is the worker's.
        after_kill = await _state(observer, VICTIM, hashes[VICTIM])
        assert after_kill == {**before, "request": ("running", False, None, None), "attempts": 1}

        await hold.rollback()

        async def backend_gone() -> bool:
            query = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
            return await observer.fetchval(query, pid) == 0

        # PostgreSQL ends the dead worker's backend once the lock lets it go, and rolls back.
        await until(backend_gone, "the dead worker's backend ended")
        assert await _state(observer, VICTIM, hashes[VICTIM]) == after_kill

        # The twin is asked for only now: a worker claims every request due at once, and the
        # twin's must be there for the run below, not held by the dead worker's lease.
        await _request(client, TWIN)
        state = app.state
        now = datetime.now(UTC)
        # Within the lease, the next run leaves the victim alone (its worker may be alive) and
        # erases the twin, uninterrupted.
        assert await run_once(state.settings, state.database, state.pseudonyms, lambda: now) == 1
        assert (await _state(observer, VICTIM, hashes[VICTIM]))["request"][0] == "running"
        twin = await _state(observer, TWIN, hashes[TWIN])
        # Past the lease, the next run takes the request over and finishes it.
        later = now + LEASE + timedelta(seconds=1)
        assert await run_once(state.settings, state.database, state.pseudonyms, lambda: later) == 1
        victim = await _state(observer, VICTIM, hashes[VICTIM])
    finally:
        await locker.close()
        await observer.close()

    assert twin["attempts"] == 1 and victim["attempts"] == 2
    del twin["attempts"], victim["attempts"]
    assert victim == twin
    # And what that result is: nothing of the subject left but its pseudonymised history.
    assert victim["events"] == victim["consent_states"] == victim["records_named"] == 0
    assert victim["records"] == [(False, False, timedelta(days=90))] * 2
    assert victim["tombstone"] == timedelta()
    assert victim["request"] == (
        "completed",
        True,
        {
            "events": 5,
            "consent_states": 1,
            "consent_records": 2,
            "integrations": 0,
            "integration_records": 0,
        },
        timedelta(days=90),
    )
    assert [action for action, _ in victim["audit"]] == ["erasure_requested", "erasure_completed"]
    detail = await client.get(f"/v1/erasure-requests/{victim_request}", headers=admin())
    assert detail.json()["status"] == "completed"
