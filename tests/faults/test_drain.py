"""SIGTERM during an event load: the server finishes what it took, and loses nothing it answered."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import _asyncpg_dsn
from tests.faults.load import Load, create_events_key, stored_ids
from tests.faults.polling import until
from tests.helpers import samples
from tests.processes import environment, server_process

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql_only]

CLIENTS = 8


async def _blocked_on_events(connection: asyncpg.Connection) -> int:
    """Backends of this database waiting for a lock on the events table."""
    count: int = await connection.fetchval(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'events'::regclass"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return count


async def _batches_pending(base: str) -> float:
    """The server's event batches not yet committed, as its metrics count them."""
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/metrics")
    scraped = samples(response.text)
    return sum(v for (name, _), v in scraped.items() if name == "consentry_event_batches_pending")


async def test_sigterm_drains_in_flight_batches_and_loses_no_accepted_event(
    pg_url: str, tmp_path: Path
) -> None:
    key = await create_events_key(pg_url)
    env = environment(CONSENTRY_DATABASE_URL=pg_url)
    log = tmp_path / "serve.log"
    locker = await asyncpg.connect(_asyncpg_dsn(pg_url))
    try:
        with server_process(env, log, "--no-migrate") as server:
            load = Load(server.base, key, clients=CLIENTS, batch_size=200)
            async with load.running(stop_on_transport_error=True) as running:
                await load.wait_answered(20)

                # Hold every client's next batch in the server, at its insert or waiting for a
                # writer held there, so that the signal certainly finds requests under way,
                # however fast the machine.
                hold = locker.transaction()
                await hold.start()
                await locker.execute("LOCK TABLE events IN SHARE MODE")

                async def all_held() -> bool:
                    blocked = await _blocked_on_events(locker)
                    return blocked >= 1 and await _batches_pending(server.base) == CLIENTS

                await until(all_held, f"{CLIENTS} batches held behind the lock")
                server.process.send_signal(signal.SIGTERM)
                load.mark()  # nothing ran between the signal and this line
                in_flight = [a for a in load.attempts if a.status is None and a.error is None]

                async def shutting_down() -> bool:
                    return "Shutting down" in log.read_text()

                # The server has begun its shutdown (stopped accepting) before the batches it
                # holds may go on.
                await until(shutting_down, "the shutdown began")
                await hold.commit()
                await asyncio.wait_for(running, 60)  # each client posts until it is refused
            code = await asyncio.to_thread(server.process.wait, 30)
    finally:
        await locker.close()
    output = log.read_text()

    answered = load.answered()
    refused = [a for a in load.attempts if a.error is not None]
    report = (
        f"{len(answered)} batches answered, {len(in_flight)} in flight at "
        f"SIGTERM, {sum(a.answered_after_mark for a in answered)} answered after it, "
        f"{len(refused)} refused (connection closed, never answered)"
    )
    print(report)
    # The drain: each batch under way at the signal was answered, and answered in full.
    assert len(in_flight) == CLIENTS, report
    assert all(a.status == 200 and a.answered_after_mark for a in in_flight), report
    # Every answer, before or after the signal, is a full acceptance: no 5xx, no partial batch.
    assert {a.status for a in answered} == {200}, report
    assert all(a.body is not None and a.body["accepted"] == len(a.ids) for a in answered)
    # Every acknowledged event is stored.
    accepted = [event_id for a in answered for event_id in a.accepted_ids]
    assert len(accepted) == len(answered) * 200
    assert await stored_ids(pg_url, accepted) == set(accepted)

    # The application's own shutdown ran (pools closed) after the requests were answered.
    assert "Application shutdown complete." in output, output
    assert code == 0, output
