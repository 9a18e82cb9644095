"""Locks on erasure requests: holding one never makes a write that refers to it wait, and the
delivery worker's settling passes over a request another transaction holds."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from consentry.privacy import fanout, repository
from consentry.privacy.repository import AWAITING
from consentry.systems.repository import Claim, Outcome
from tests.helpers import admin
from tests.privacy.test_erasure import ERASURES

pytestmark = pytest.mark.anyio

# Long enough for any commit here; a transaction that waits this long waits for good.
HANG_SECONDS = 30


@pytest.fixture(autouse=True)
def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")


async def _request(client: httpx.AsyncClient, subject: str) -> str:
    body = {"subject_id": subject, "reason": "account_deleted"}
    response = await client.post(ERASURES, json=body, headers=admin())
    assert response.status_code == 202
    request_id: str = response.json()["id"]
    return request_id


async def test_two_transactions_holding_requests_refer_to_each_others_without_deadlock(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A confirm token (or a system's entry) refers to its request: inserting it takes FOR KEY
    SHARE on the request, which a FOR UPDATE held elsewhere keeps out."""
    first = await _request(client, "learner-one")
    second = await _request(client, "learner-two")
    database = app.state.database
    both_held = asyncio.Barrier(2)

    async def hold_then_refer(own: str, other: str) -> None:
        async with database.unit_of_work() as uow:
            assert await repository.get_locked(uow, own) is not None
            await both_held.wait()
            token = secrets.token_hex(32)
            await repository.add_token(uow, token, other, "course-progress", datetime.now(UTC))

    await asyncio.wait_for(
        asyncio.gather(hold_then_refer(first, second), hold_then_refer(second, first)),
        HANG_SECONDS,
    )


async def test_settling_delivered_attempts_passes_over_a_request_held_elsewhere(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    request_id = await _request(client, "learner-one")
    database = app.state.database
    async with database.unit_of_work() as uow:
        await repository.set_fields(uow, request_id, {"status": AWAITING})
    now = datetime.now(UTC)
    claim = Claim(
        message_id="msg_1",
        system_id="course-progress",
        attempt=1,
        streak=0,
        type="erasure.requested",
        body={"data": {"request_id": request_id, "mode": "notify"}},
        webhook_url="https://progress.example/hooks",
        secret="whsec_x",
        previous_secret=None,
        previous_secret_until=None,
    )
    delivered = Outcome("msg_1", "course-progress", 1, "delivered", 0, None, "204", None, now, now)

    async def settle() -> None:
        async with database.unit_of_work() as uow:
            await fanout.settle_attempts(uow, [(claim, delivered)])

    async with database.unit_of_work() as holder:
        assert await repository.get_locked(holder, request_id) is not None
        # Waiting for the holder here would wait for good: the holder waits for this.
        await asyncio.wait_for(settle(), HANG_SECONDS)
    async with database.reader() as reader:
        held = await repository.get(reader, request_id)
    assert held is not None and held.status == AWAITING

    # Free, the same request is settled: with no system left to wait for, it ends.
    await asyncio.wait_for(settle(), HANG_SECONDS)
    async with database.reader() as reader:
        settled = await repository.get(reader, request_id)
    assert settled is not None and settled.status == "completed"
