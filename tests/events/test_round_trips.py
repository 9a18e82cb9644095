"""A batch costs PostgreSQL four round trips, however many events and subjects it holds.

BEGIN with the erasure locks, the gates of every subject, one insert of every accepted event,
COMMIT. Each round trip is a wait for the database and a write to its socket: under load they,
not the events, set the pace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.cli import Cli
from tests.events.support import MS, ingest, new_subject, outcomes, record, since
from tests.helpers import bearer, event
from tests.replicas import until

pytestmark = pytest.mark.anyio

# Every way the driver sends statements to the server.
_SENDS = ("execute", "executemany", "fetch", "fetchrow", "fetchval", "copy_records_to_table")


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count, from now on, the statements the pool's connections send, by method.

    The listeners' own connections are left out: one that connects late, or reconnects, sends
    its LISTENs (as `fetch`) whenever it gets there, whatever the requests do. They name
    themselves to PostgreSQL; the pool's connections do not.
    """
    sent: Counter[str] = Counter()

    def wrapped(name: str) -> Callable[..., Awaitable[Any]]:
        send = getattr(asyncpg.Connection, name)

        async def counted(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
            if not self.get_settings().application_name:
                sent[name] += 1
            return await send(self, *args, **kwargs)

        return counted

    for name in _SENDS:
        monkeypatch.setattr(asyncpg.Connection, name, wrapped(name))
    return sent


async def test_a_batch_is_four_round_trips(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    if app.state.database.dialect != "postgresql":
        pytest.skip("SQLite has no round trips")
    subjects = [new_subject() for _ in range(5)]
    grants = [await record(client, subject, performance=True) for subject in subjects[:3]]
    batch = [
        event(subject, "performance", since(grant, "performance") + MS)
        for subject, grant in zip(subjects, grants, strict=False)
    ]
    batch += [event(subject, "performance") for subject in subjects[3:]]
    batch += [event(subject) for subject in subjects for _ in range(3)]
    await app.state.pseudonyms.get()  # a development key is read once, on first use
    sent = _counting(monkeypatch)
    result = await ingest(client, batch)
    assert outcomes(result) == ["accepted"] * 3 + ["consent_denied"] * 2 + ["accepted"] * 15
    # BEGIN with the locks, and COMMIT; the gates, and the insert.
    assert sent == {"execute": 2, "fetch": 2}
    # A resend finds every key stored, in the same four.
    sent.clear()
    again = await ingest(client, batch)
    assert outcomes(again) == ["duplicate"] * 3 + ["consent_denied"] * 2 + ["duplicate"] * 15
    assert sent == {"execute": 2, "fetch": 2}


async def test_an_api_key_is_looked_up_once_not_per_batch(
    app: FastAPI, client: httpx.AsyncClient, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    if app.state.database.dialect != "postgresql":
        pytest.skip("SQLite has no round trips, and no cache: nothing tells it of a revocation")
    created = await cli("keys", "create", "--name", "relay", "--scope", "events:write")
    assert created.code == 0, created.err
    headers = bearer(created.out.strip())
    await until(lambda: app.state.key_cache.listening)
    await app.state.pseudonyms.get()
    sent = _counting(monkeypatch)
    for _ in range(2):
        batch = {"events": [event(new_subject())]}
        response = await client.post("/v1/events", json=batch, headers=headers)
        assert response.status_code == 200, response.text
    # The key's lookup, then two batches of four.
    assert sent == {"execute": 4, "fetch": 5}
