"""A batch and a consent change never interleave; a batch survives concurrent writers of its events.

On PostgreSQL a batch share-locks its subjects' consent rows while a consent writer holds them
FOR UPDATE; on SQLite every write transaction begins IMMEDIATE, so the two serialize.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from consentry.auth import Caller
from consentry.consent.repository import lock_state
from consentry.consent.schemas import ConsentUpdate
from consentry.consent.service import ConsentChange, RequestFacts, record_choice
from consentry.db import UnitOfWork
from consentry.events.repository import share_gates
from tests.events.support import MS, count_rows, ingest, new_subject, now, post, record, since
from tests.helpers import admin, choice, event

pytestmark = pytest.mark.anyio

# Long enough for a batch that does not wait to have answered; it proves only that one waits.
STILL_WAITING = 0.3


async def _withdraw(app: FastAPI, uow: UnitOfWork, subject: str) -> dict[str, Any]:
    """Withdraw performance in `uow`'s transaction the way the PUT route does, uncommitted until
    the block ends. A request's change to a recorded choice is one statement that commits by
    itself; the write lock taken first begins the transaction, which the change then waits in."""
    pseudonyms = await app.state.pseudonyms.get()
    await lock_state(uow, subject, pseudonyms.of(subject))
    update = ConsentUpdate.model_validate(choice(performance=False))
    change = ConsentChange(
        choice=update,
        categories=cast(Mapping[str, bool], update.categories),  # a TypedDict of booleans
        caller=Caller(kind="user", name="subject", subject_id=subject),
        facts=RequestFacts(region=None, gpc=False, ip=None, user_agent=None),
        if_match=None,
    )
    return await record_choice(
        uow,
        app.state.policy,
        pseudonyms,
        app.state.consent_cache,
        subject,
        change,
    )


async def test_a_batch_waits_for_a_withdrawal_in_progress_and_is_refused_by_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    subject = new_subject()
    grant = await record(client, subject, performance=True)
    control = event(subject, "performance", since(grant, "performance") + MS)
    assert [r["status"] for r in (await ingest(client, [control]))["results"]] == ["accepted"]

    tracked = event(subject, "performance", now())
    async with app.state.database.unit_of_work() as uow:  # commits when the block ends
        withdrawn = await _withdraw(app, uow, subject)
        assert withdrawn["categories"]["performance"]["granted"] is False
        batch = asyncio.create_task(post(client, [tracked]))
        await asyncio.sleep(STILL_WAITING)
        # A batch that read consent without a lock would have seen the committed grant, stored
        # the event and answered by now. It must instead be waiting on the writer's lock...
        assert not batch.done()
    response = await batch
    # ...and, once let through, judge by the withdrawal: a batch that read the grant before
    # waiting (locking only for the insert) would have accepted the event.
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"event_id": tracked["event_id"], "status": "rejected", "reason": "consent_denied"}
    ]
    assert await count_rows(app) == 1  # the control event alone


async def test_a_withdrawal_waits_for_a_batch_that_has_read_the_grant(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The other half: a withdrawal cannot commit between a batch's read and its insert."""
    subject = new_subject()
    await record(client, subject, performance=True)
    async with app.state.database.unit_of_work() as uow:
        gates = await share_gates(uow, [subject], [(await app.state.pseudonyms.get()).of(subject)])
        assert "performance" in gates[subject].granted_since
        withdrawal = asyncio.create_task(
            client.put(
                f"/v1/subjects/{subject}/consent",
                json=choice(performance=False),
                headers=admin(),
            )
        )
        await asyncio.sleep(STILL_WAITING)
        assert not withdrawal.done()
    response = await withdrawal
    assert response.status_code == 200
    assert response.json()["categories"]["performance"]["granted"] is False


# --- Concurrent writers of the same events (PostgreSQL: COPY, then a retry on a unique conflict)


def _pg_dsn(app: FastAPI) -> str:
    url = make_url(app.state.settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll until `condition` holds: a state to reach, not a time to pass."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


_INSERT = (
    "INSERT INTO events (subject_id, event_id, category, name, occurred_at, received_at,"
    " properties, context) VALUES ($1, $2, 'necessary', 'other.writer', now(), now(), '{}', '{}')"
)
# Any backend of this database but ours that some of `blockers` holds up: the batch.
_BLOCKED = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND NOT (pid = ANY($1::int[])) AND pg_blocking_pids(pid) && $2::int[]"
)


async def test_a_batch_outlasts_three_concurrent_writers_of_its_events(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Three other transactions each commit one of the batch's events while it is in flight.

    Each holds its event uncommitted before the batch reaches it, so the batch's insert waits
    for it and then meets a conflict; between attempts a consent-row lock holds the batch back
    until the next writer is in place. Every step waits for a lock state, never for a time.
    """
    if app.state.database.dialect == "sqlite":
        pytest.skip("SQLite runs one writer at a time: a batch never meets a conflict")
    subject = new_subject()
    await record(client, subject)  # a consent row, which each attempt of the batch share-locks
    ids = sorted(str(uuid.uuid4()) for _ in range(3))  # the order in which the batch inserts
    dsn = _pg_dsn(app)
    connections = [await asyncpg.connect(dsn, timeout=5) for _ in range(6)]
    monitor, *writers, gate_a, gate_b = connections
    pids = [await c.fetchval("SELECT pg_backend_pid()") for c in connections]
    pid = dict(zip(["monitor", "w0", "w1", "w2", "gate_a", "gate_b"], pids, strict=True))

    def batch_blocked_by(*names: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            held = [pid[name] for name in names]
            return batch.done() or bool(await monitor.fetchval(_BLOCKED, pids, held))

        return check

    def queued(name: str, task: asyncio.Task[bool]) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            blockers = await monitor.fetchval("SELECT pg_blocking_pids($1)", pid[name])
            return task.done() or bool(blockers)

        return check

    async def hold_event(connection: asyncpg.Connection, event_id: str) -> Any:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(_INSERT, subject, event_id)
        return transaction

    async def lock_consent(connection: asyncpg.Connection) -> bool:
        """Whether the subject's consent row was locked FOR UPDATE within 3 s."""
        await connection.execute("SET LOCAL lock_timeout = '3s'")
        try:
            await connection.execute(
                "SELECT 1 FROM consent_states WHERE subject_id = $1 FOR UPDATE", subject
            )
        except asyncpg.LockNotAvailableError:
            return False
        return True

    async def conflict(number: int, gate: asyncpg.Connection, gate_name: str) -> None:
        """Queue a consent lock behind the batch, then commit writer `number`'s event."""
        gate_tx = gate.transaction()
        await gate_tx.start()
        locked = asyncio.create_task(lock_consent(gate))
        await _until(queued(gate_name, locked), f"{gate_name} queues behind the batch")
        await held[number].commit()
        if await locked:
            await _until(batch_blocked_by(gate_name), f"the batch waits for {gate_name}")
        await gate_tx.rollback()
        if number < 2:
            await _until(batch_blocked_by(f"w{number + 1}"), f"the batch waits for w{number + 1}")

    try:
        held = [await hold_event(writers[0], ids[0])]
        batch = asyncio.create_task(post(client, [event(subject, event_id=i) for i in ids]))
        await _until(batch_blocked_by("w0"), "the batch waits for w0")
        held.append(await hold_event(writers[1], ids[1]))
        await conflict(0, gate_a, "gate_a")
        held.append(await hold_event(writers[2], ids[2]))
        await conflict(1, gate_b, "gate_b")
        await held[2].commit()
        response = await batch
    finally:
        for connection in connections:
            await connection.close()
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["duplicate"] * 3
    assert await count_rows(app) == 3
