"""Exports under clients that stop reading: caps per subject and per process, and a database
snapshot that ends when the database has delivered it, not when the client has read it.

A stalled client is an ASGI `send` that does not return: the app sits in it exactly as it sits
in uvicorn's when the socket's buffers are full.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from consentry.settings import Settings
from consentry.streaming import StreamAborted
from tests.conftest import make_settings
from tests.events.support import ingest
from tests.faults.polling import until
from tests.helpers import admin, bearer, choice, event, user_token
from tests.privacy.test_erasure import work
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

PER_SUBJECT = 1
CONCURRENCY = 2
BUFFER_BYTES = 64 * 1024
DEADLINE = 0.5


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        export_per_subject=PER_SUBJECT,
        export_concurrency=CONCURRENCY,
        export_buffer_bytes=BUFFER_BYTES,
        export_timeout_seconds=DEADLINE,
    )


@dataclass(frozen=True)
class StalledClient:
    """An export whose client took the response's head, then nothing until resumed."""

    task: asyncio.Task[None]
    resume: asyncio.Event
    gone: asyncio.Event
    body: bytearray

    async def finish(self) -> dict[str, Any]:
        """Read the rest; the whole document."""
        self.resume.set()
        await self.task
        document: dict[str, Any] = json.loads(self.body)
        return document


async def _stalled_export(app: FastAPI, subject: str, token: str) -> StalledClient:
    """Start an export of `subject` whose client stalls once the response has begun."""
    started, resume, gone = asyncio.Event(), asyncio.Event(), asyncio.Event()
    path = f"/v1/subjects/{subject}/export"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("198.51.100.23", 50000),
        "server": ("testserver", 80),
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()  # the client never leaves by itself
        return {"type": "http.disconnect"}

    status: list[int] = []
    body = bytearray()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            started.set()
            return
        await resume.wait()
        body.extend(message.get("body", b""))

    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    await started.wait()
    assert status == [200]
    return StalledClient(task, resume, gone, body)


Stall = Callable[[str], Awaitable[StalledClient]]


@pytest.fixture
async def stall(app: FastAPI) -> AsyncIterator[Stall]:
    """Starts stalled exports (with the subject's own JWT); ends any still stalled at the end."""
    clients: list[StalledClient] = []

    async def start(subject: str) -> StalledClient:
        clients.append(await _stalled_export(app, subject, user_token(subject)))
        return clients[-1]

    yield start
    for client in clients:  # a failed test must not leave the app waiting on its client
        client.gone.set()
        client.resume.set()
        with contextlib.suppress(Exception):
            await client.task


async def _snapshot_held(app: FastAPI) -> bool:
    """Whether some reader still holds an open snapshot of the database."""
    url = app.state.settings.database_url
    if url.startswith("sqlite"):
        # A checkpoint that truncates the log must wait for every reader of it to finish.
        with sqlite3.connect(str(make_url(url).database), timeout=0) as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return bool(busy)
    async with app.state.database.reader() as connection:
        count = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"
            )
        )
    return bool(count)


async def _not_held(app: FastAPI) -> bool:
    return not await _snapshot_held(app)


async def _write_elsewhere(client: httpx.AsyncClient) -> None:
    """A write after the export's snapshot began, which a held snapshot keeps in the log."""
    response = await client.put(
        "/v1/subjects/learner-elsewhere/consent", json=choice(), headers=admin()
    )
    assert response.status_code == 200, response.text


def _without_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "exported_at"}


async def test_a_client_that_reads_nothing_holds_no_snapshot(
    app: FastAPI, client: httpx.AsyncClient, stall: Stall
) -> None:
    await client.put("/v1/subjects/learner-a/consent", json=choice(functional=True))
    await ingest(client, [event("learner-a", "necessary", properties={"n": n}) for n in range(20)])
    stalled = await stall("learner-a")
    await _write_elsewhere(client)
    # The document fits in the read-ahead: the database is done with it though nothing was read.
    await until(lambda: _not_held(app), "the export's snapshot ended", seconds=10)
    document = await stalled.finish()
    expected = await client.get("/v1/subjects/learner-a/export", headers=admin())
    assert _without_time(document) == _without_time(expected.json())
    assert len(document["events"]) == 20


async def test_exports_past_the_caps_are_refused_at_once(
    app: FastAPI, client: httpx.AsyncClient, stall: Stall
) -> None:
    first = await stall("learner-a")
    # The subject's own cap: its own JWT and the privacy team alike.
    for headers in (bearer(user_token("learner-a")), admin()):
        response = await client.get("/v1/subjects/learner-a/export", headers=headers)
        assert_problem(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) > 0
    second = await stall("learner-b")
    # The process's cap.
    response = await client.get("/v1/subjects/learner-c/export", headers=admin())
    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) > 0
    # Everything else is served meanwhile.
    read = await client.get("/v1/subjects/learner-c/consent", headers=admin())
    assert read.status_code == 200, read.text
    # A refused export was neither audited nor begun.
    log = (await client.get("/v1/audit-log?action=export", headers=admin())).json()["items"]
    assert len(log) == 2
    await first.finish()
    await second.finish()
    for subject in ("learner-a", "learner-c"):
        response = await client.get(f"/v1/subjects/{subject}/export", headers=admin())
        assert response.status_code == 200, response.text


async def test_a_refused_export_gives_its_slot_back(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await client.post("/v1/erasure-requests", json={"subject_id": "learner-gone"}, headers=admin())
    await work(app)
    for _ in range(CONCURRENCY + 1):
        response = await client.get("/v1/subjects/learner-gone/export", headers=admin())
        assert_problem(response, 410, "subject_erased")
    response = await client.get("/v1/subjects/learner-a/export", headers=admin())
    assert response.status_code == 200, response.text
    assert len(app.state.export_slots) == 0


async def test_an_export_not_read_within_its_deadline_lets_go_and_is_cut_short(
    app: FastAPI, client: httpx.AsyncClient, stall: Stall
) -> None:
    padding = "x" * 1000
    events = [event("learner-a", "necessary", properties={"p": padding}) for _ in range(400)]
    await ingest(client, events)
    # Larger than the read-ahead: the database is read only as the client makes room.
    stalled = await stall("learner-a")
    await _write_elsewhere(client)
    await until(lambda: _not_held(app), "the export's snapshot ended at its deadline", seconds=10)
    stalled.resume.set()
    with pytest.raises(StreamAborted):
        await stalled.task
    with pytest.raises(json.JSONDecodeError):
        json.loads(stalled.body)
    assert len(app.state.export_slots) == 0
