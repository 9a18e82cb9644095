"""One standing erasure request per subject, however many arrive at once, and a worker that
closes a request whose subject is already erased instead of failing it forever."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select, update

from consentry.db import UniqueViolation
from consentry.privacy import repository
from consentry.privacy.models import ErasureRequest
from tests.helpers import admin, bearer, user_token
from tests.privacy.test_erasure import ERASURES, _dump, _learner_with_data, work

pytestmark = pytest.mark.anyio

SUBJECT = "learner-clicks-twice"
AT_ONCE = 8


def _post(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    body = {"subject_id": SUBJECT, "reason": "account_deleted"}
    return client.post(ERASURES, json=body, headers=headers)


async def _requests(app: FastAPI) -> list[Any]:
    async with app.state.database.reader() as reader:
        query = select(ErasureRequest.id, ErasureRequest.status, ErasureRequest.subject_id)
        return [(row["id"], row["status"], row["subject_id"]) for row in await reader.all(query)]


@pytest.mark.parametrize("who", ["privacy team", "subject"])
async def test_requests_arriving_at_once_make_one_request(
    app: FastAPI, client: httpx.AsyncClient, who: str
) -> None:
    await _learner_with_data(client, SUBJECT)
    headers = admin() if who == "privacy team" else bearer(user_token(SUBJECT))
    responses = await asyncio.gather(*(_post(client, headers) for _ in range(AT_ONCE)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * (AT_ONCE - 1) + [202], [r.text for r in responses]
    assert len({response.json()["id"] for response in responses}) == 1
    assert len(await _requests(app)) == 1
    log = (await client.get("/v1/audit-log?action=erasure_requested", headers=admin())).json()
    assert len(log["items"]) == 1

    assert await work(app) == 1
    assert [status for _, status, _ in await _requests(app)] == ["completed"]
    assert SUBJECT not in await _dump(app)
    again = await _post(client, headers if who == "privacy team" else admin())
    assert again.status_code == 200 and again.json()["id"] == responses[0].json()["id"]


async def test_the_database_refuses_a_second_standing_request(app: FastAPI) -> None:
    """The rule holds below the service too: a second open or completed row cannot be stored."""
    subject_hash = (await app.state.pseudonyms.get()).of(SUBJECT)
    now = datetime.now(UTC)

    def row(status: str) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "subject_id": SUBJECT,
            "subject_hash": subject_hash,
            "status": status,
            "reason": "account_deleted",
            "requested_by": "admin",
            "requested_at": now,
            "due_by": now + timedelta(days=30),
            "run_after": now,
            "attempts": 0,
        }

    database = app.state.database
    async with database.unit_of_work() as uow:
        # Cancelled requests never stand in the way of a new one.
        await uow.execute_many(insert(ErasureRequest), [row("cancelled"), row("cancelled")])
        await uow.execute(insert(ErasureRequest), row("pending"))
    for status in ("pending", "running", "failed", "completed", "awaiting_systems"):
        with pytest.raises(UniqueViolation):
            async with database.unit_of_work() as uow:
                await uow.execute(insert(ErasureRequest), row(status))
    assert len(await _requests(app)) == 3


async def test_a_request_whose_subject_was_erased_meanwhile_completes_without_erasing_again(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _learner_with_data(client, SUBJECT)
    created = (await _post(client, admin())).json()
    # The subject is erased by another path while the request waits: its id is gone from it.
    pseudonyms = await app.state.pseudonyms.get()
    now = datetime.now(UTC)
    async with app.state.database.unit_of_work() as uow:
        await repository.erase_subject(
            uow, SUBJECT, pseudonyms.of(SUBJECT), now, now + timedelta(days=90)
        )

    assert await work(app) == 1

    done = (await client.get(f"{ERASURES}/{created['id']}", headers=admin())).json()
    assert done["status"] == "completed" and done["subject_id"] is None
    assert done["deleted"] == dict.fromkeys(repository.ERASED_KINDS, 0)
    assert await work(app, lambda: now + timedelta(days=1)) == 0
    failures = (await client.get("/v1/audit-log?action=erasure_failed", headers=admin())).json()
    assert failures["items"] == []


async def test_a_failed_request_whose_subject_is_gone_is_not_retried_forever(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The state the race left behind: a failed request holding only the subject's hash."""
    created = (await _post(client, admin())).json()
    assert await work(app) == 1
    async with app.state.database.unit_of_work() as uow:
        await uow.execute(
            update(ErasureRequest)
            .where(ErasureRequest.id == created["id"])
            .values(status="failed", attempts=3, run_after=datetime.now(UTC))
        )
    assert await work(app) == 1
    done = (await client.get(f"{ERASURES}/{created['id']}", headers=admin())).json()
    assert done["status"] == "completed"
