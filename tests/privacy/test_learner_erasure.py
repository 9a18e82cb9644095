"""The learner's side of an erasure: its own requests, read also after the erasure; cancelling
one it made during the grace period; nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from consentry.privacy.worker import run_once
from tests.conftest import make_settings
from tests.helpers import admin, bearer, user_token
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

ERASURES = "/v1/erasure-requests"
LEARNER = "learner-own-4d2a"
OTHER = "learner-other-8b1c"


def _as(subject: str) -> dict[str, str]:
    return bearer(user_token(subject))


async def _ask(client: httpx.AsyncClient, subject: str, headers: dict[str, str]) -> str:
    response = await client.post(ERASURES, json={"subject_id": subject}, headers=headers)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


async def test_a_learner_reads_its_own_requests_also_after_the_erasure(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    own = await _ask(client, LEARNER, _as(LEARNER))
    other = await _ask(client, OTHER, admin())
    state = app.state
    assert await run_once(state.settings, state.database, state.pseudonyms) == 2

    # Erased, and still the learner's token finds its request, by keyed hash.
    listed = await client.get(ERASURES, headers=_as(LEARNER))
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["id"], item["status"], item["subject_id"]) == (own, "completed", None)
    named = await client.get(ERASURES, params={"subject_id": LEARNER}, headers=_as(LEARNER))
    assert [i["id"] for i in named.json()["items"]] == [own]
    one = await client.get(f"{ERASURES}/{own}", headers=_as(LEARNER))
    assert one.status_code == 200 and one.json()["deleted"] is not None

    someone = await client.get(ERASURES, params={"subject_id": OTHER}, headers=_as(LEARNER))
    assert_problem(someone, 403, "forbidden")
    assert_problem(await client.get(f"{ERASURES}/{other}", headers=_as(LEARNER)), 403, "forbidden")
    # A learner with no request sees an empty list, not everyone's.
    nobody = await client.get(ERASURES, headers=_as("learner-without-requests"))
    assert nobody.status_code == 200 and nobody.json()["items"] == []


async def test_a_learner_cancels_its_own_request_during_the_grace_period_only(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    app.state.settings = make_settings(database_url, erasure_grace_days=7)
    own = await _ask(client, LEARNER, _as(LEARNER))
    by_team = await _ask(client, OTHER, admin())
    # Not someone else's, and not one the privacy team made about the learner.
    assert_problem(await client.delete(f"{ERASURES}/{own}", headers=_as(OTHER)), 403, "forbidden")
    about_other = await client.delete(f"{ERASURES}/{by_team}", headers=_as(OTHER))
    assert_problem(about_other, 403, "forbidden")
    cancelled = await client.delete(f"{ERASURES}/{own}", headers=_as(LEARNER))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    log = (await client.get("/v1/audit-log?action=erasure_cancelled", headers=admin())).json()
    assert log["items"][0]["actor"] == "subject"

    # A new request runs once the grace period is over; then it can no longer be cancelled.
    again = await _ask(client, LEARNER, _as(LEARNER))
    state = app.state
    later = datetime.now(UTC) + timedelta(days=8)
    assert await run_once(state.settings, state.database, state.pseudonyms, lambda: later) == 2
    late = await client.delete(f"{ERASURES}/{again}", headers=_as(LEARNER))
    assert_problem(late, 409, "conflict")
    # The privacy team's own cancel rules are unchanged.
    missing = f"{ERASURES}/00000000-0000-4000-8000-000000000000"
    assert_problem(await client.delete(missing, headers=_as(LEARNER)), 404, "not_found")
