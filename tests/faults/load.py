"""A concurrent event load against a real server, recording what every batch was answered."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from asyncio import Task
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from consentry.db import open_database
from consentry.keys.service import create_key
from tests.conftest import _asyncpg_dsn, make_settings
from tests.helpers import bearer, rfc3339

# Generous: an answer slower than this counts as a hang, which is a failure of its own.
CLIENT_TIMEOUT = httpx.Timeout(20.0)


@dataclass
class Attempt:
    """One POST of one batch, and how it ended."""

    ids: list[str]
    status: int | None = None
    body: dict[str, Any] | None = None
    content_type: str = ""
    error: str | None = None  # the transport error, when no answer came
    # Whether the batch was sent before, and answered after, `Load.mark()` was called.
    sent_before_mark: bool = False
    answered_after_mark: bool = False

    @property
    def accepted_ids(self) -> list[str]:
        """The events the answer says were accepted (none unless answered 200)."""
        if self.status != 200 or self.body is None:
            return []
        return [r["event_id"] for r in self.body["results"] if r["status"] == "accepted"]


@dataclass
class Load:
    """Several clients posting batches of new `necessary` events until stopped."""

    base: str
    key: str
    clients: int = 6
    batch_size: int = 200
    attempts: list[Attempt] = field(default_factory=list)
    marked: bool = False
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _answered: asyncio.Condition = field(default_factory=asyncio.Condition)

    def mark(self) -> None:
        """Note this moment: attempts record whether they straddled it."""
        self.marked = True

    def answered(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status is not None]

    async def wait_answered(self, count: int, status: int = 200) -> None:
        """Until `count` batches were answered with `status`."""
        async with asyncio.timeout(60), self._answered:
            await self._answered.wait_for(
                lambda: sum(a.status == status for a in self.attempts) >= count
            )

    async def run(self, *, stop_on_transport_error: bool = False) -> None:
        """Post until stop() (or, if told, until the server stops answering a client)."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.clients):
                group.create_task(self._client(stop_on_transport_error))

    def stop(self) -> None:
        self._stopping.set()

    @contextlib.asynccontextmanager
    async def running(self, *, stop_on_transport_error: bool = False) -> AsyncIterator[Task[None]]:
        """The load in a task of its own, cancelled if the block ends before the load did."""
        task = asyncio.create_task(self.run(stop_on_transport_error=stop_on_transport_error))
        try:
            yield task
        finally:
            self.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _client(self, stop_on_transport_error: bool) -> None:
        async with httpx.AsyncClient(
            base_url=self.base, headers=bearer(self.key), timeout=CLIENT_TIMEOUT
        ) as client:
            while not self._stopping.is_set():
                attempt = Attempt([str(uuid.uuid4()) for _ in range(self.batch_size)])
                attempt.sent_before_mark = not self.marked
                self.attempts.append(attempt)
                try:
                    response = await client.post("/v1/events", json=batch(attempt.ids))
                except httpx.TransportError as exc:
                    attempt.error = type(exc).__name__
                    if stop_on_transport_error:
                        return
                    await asyncio.sleep(0.05)
                    continue
                attempt.answered_after_mark = self.marked
                attempt.status = response.status_code
                attempt.content_type = response.headers.get("content-type", "")
                with contextlib.suppress(ValueError):  # a body that is not JSON stays None
                    attempt.body = response.json()
                async with self._answered:
                    self._answered.notify_all()
                if response.status_code != 200:
                    await asyncio.sleep(0.05)  # as a client honouring Retry-After would, briefly


def batch(ids: list[str], subject: str | None = None) -> dict[str, Any]:
    """A batch of `necessary` events (taken without consent) with the given ids."""
    subject = subject or f"load-{uuid.uuid4().hex[:8]}"
    moment = rfc3339(datetime.now(UTC))
    events = [
        {
            "event_id": event_id,
            "subject_id": subject,
            "category": "necessary",
            "name": "lesson.viewed",
            "occurred_at": moment,
        }
        for event_id in ids
    ]
    return {"events": events}


async def create_events_key(database_url: str) -> str:
    """A new API key with `events:write` only."""
    database = await open_database(make_settings(database_url))
    try:
        async with database.unit_of_work() as uow:
            plaintext, _ = await create_key(uow, "event-load", ["events:write"])
    finally:
        await database.dispose()
    return plaintext


async def stored_ids(database_url: str, ids: list[str]) -> set[str]:
    """Which of these event ids are stored, read straight from PostgreSQL."""
    connection = await asyncpg.connect(_asyncpg_dsn(database_url), timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT event_id FROM events WHERE event_id = ANY($1::text[])", ids
        )
    finally:
        await connection.close()
    return {row["event_id"] for row in rows}
