"""The worker: retention on its own schedule, and `consentry worker` as a separate process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from consentry.privacy.worker import LISTENER_NAME, Signals, retain_if_due, run_worker
from tests.conftest import _asyncpg_dsn
from tests.faults.polling import until
from tests.helpers import admin
from tests.processes import CONSENTRY, environment

pytestmark = pytest.mark.anyio


async def test_retention_runs_at_most_hourly(app: FastAPI) -> None:
    state = app.state
    signals = Signals()
    start = datetime(2026, 11, 29, 12, tzinfo=UTC)
    for offset, runs in ((0, True), (59, False), (61, True)):
        moment = start + timedelta(minutes=offset)
        report = await retain_if_due(state.settings, state.database, signals, lambda at=moment: at)
        assert (report is not None) == runs, offset


async def test_the_worker_command_erases_and_stops_on_sigterm(
    app: FastAPI, client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    body = {"subject_id": "learner-by-worker", "reason": "account_deleted"}
    created = (await client.post("/v1/erasure-requests", json=body, headers=admin())).json()
    env = environment(CONSENTRY_DATABASE_URL=database_url, CONSENTRY_WORKER_INTERVAL_SECONDS="0.2")
    log = tmp_path / "worker.log"
    with (
        log.open("wb") as output,
        # Started once and left alone: meanwhile the test only polls the API.
        subprocess.Popen(  # noqa: ASYNC220
            [*CONSENTRY, "worker"], env=env, stdout=output, stderr=output
        ) as process,
    ):
        try:
            async with asyncio.timeout(30):
                while True:
                    found = await client.get(
                        f"/v1/erasure-requests/{created['id']}", headers=admin()
                    )
                    if found.json()["status"] == "completed":
                        break
                    await asyncio.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    assert code == 0, log.read_text()
    assert "stopped" in log.read_text()
    # The process hashed with the same development key as this one: the search finds it.
    listed = await client.get(
        "/v1/erasure-requests", params={"subject_id": "learner-by-worker"}, headers=admin()
    )
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]


async def test_a_worker_elsewhere_is_woken_by_a_new_request_without_waiting_its_interval(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no other process to wake: the route wakes its own worker")
    state = app.state
    # Left to its interval, this worker would look again only in an hour.
    settings = state.settings.model_copy(update={"worker_interval_seconds": 3600})
    signals = Signals()
    worker = asyncio.create_task(run_worker(settings, state.database, state.pseudonyms, signals))
    observer = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:

        async def listening() -> bool:
            # Its connection idle after LISTEN: from now on, a new request wakes it.
            found = await observer.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = $1 AND state = 'idle' AND query LIKE 'LISTEN%'",
                LISTENER_NAME,
            )
            return bool(found)

        await until(listening, "the worker listens for new requests")
        await asyncio.sleep(0.5)  # the passes it began with have ended
        body = {"subject_id": "learner-woken", "reason": "account_deleted"}
        created = (await client.post("/v1/erasure-requests", json=body, headers=admin())).json()

        async def completed() -> bool:
            found = await client.get(f"/v1/erasure-requests/{created['id']}", headers=admin())
            return bool(found.json()["status"] == "completed")

        await until(completed, "the request made after the worker went to sleep completed")
    finally:
        await observer.close()
        signals.stop()
        await worker
