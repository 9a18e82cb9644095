"""Erasure: requests, the worker, the tombstone, and a database with no trace of the subject."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from consentry.privacy import repository
from consentry.privacy.worker import run_once
from consentry.subject_locks import bucket
from consentry.systems.urls import AllowList
from consentry.tables import Base
from tests.conftest import make_settings
from tests.events.support import ingest, outcomes
from tests.helpers import admin, bearer, choice, event, make_key, user_token
from tests.integrations.support import declare
from tests.systems.receiver import Reply, receiving
from tests.systems.support import deliver, deliveries, register
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

# Distinctive enough that finding it anywhere in a dump means it was left behind.
SUBJECT = "learner-7f3a9c"
ERASURES = "/v1/erasure-requests"
# What erasing the subject of `_learner_with_data` removes.
FULL_ERASURE = {
    "events": 4,
    "consent_states": 1,
    "consent_records": 2,
    "integrations": 1,
    "integration_records": 2,
}


def at(offset: timedelta = timedelta()) -> Callable[[], datetime]:
    moment = datetime.now(UTC) + offset
    return lambda: moment


async def work(app: FastAPI, clock: Callable[[], datetime] | None = None) -> int:
    state = app.state
    return await run_once(state.settings, state.database, state.pseudonyms, clock or at())


async def _request(client: httpx.AsyncClient, subject: str = SUBJECT, **headers: str) -> Any:
    body = {"subject_id": subject, "reason": "account_deleted"}
    return await client.post(ERASURES, json=body, headers=headers or admin())


async def _learner_with_data(client: httpx.AsyncClient, subject: str = SUBJECT) -> None:
    """A subject with consent, a history of two records, stored events, and a connection with a
    history of two records (asked, then approved)."""
    headers = {**admin(), "User-Agent": f"agent-of-{subject}"}
    for performance in (True, False):
        body = choice(performance=performance, functional=True)
        put = await client.put(f"/v1/subjects/{subject}/consent", json=body, headers=headers)
        assert put.status_code == 200
    result = await ingest(
        client,
        [event(subject, "necessary", properties={"who": subject}) for _ in range(3)]
        + [event(subject, "functional")],
    )
    assert result["accepted"] == 4
    if (await client.get("/v1/integrations/cloud-drive")).status_code == 404:
        await declare(client)
    connection = f"/v1/subjects/{subject}/integrations/cloud-drive"
    asked = await client.post(
        f"{connection}/requests", json={"scopes": ["files.write"]}, headers=admin()
    )
    assert asked.status_code == 201, asked.text
    approve = {"decision": "approve", "scopes": ["files.write"]}
    approved = await client.put(connection, json=approve, headers=bearer(user_token(subject)))
    assert approved.status_code == 200, approved.text


async def _dump(app: FastAPI) -> str:
    """Every row of every table, as text."""
    rows: list[str] = []
    async with app.state.database.reader() as reader:
        for table in Base.metadata.sorted_tables:
            for row in await reader.all(select(table)):
                rows.append(f"{table.name}: {tuple(row.values())!r}")
    return "\n".join(rows)


async def test_an_erasure_leaves_no_trace_of_the_subject(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _learner_with_data(client)
    await _learner_with_data(client, "learner-other")
    response = await _request(client)
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "pending" and created["subject_id"] == SUBJECT
    assert SUBJECT in await _dump(app)

    assert await work(app) == 1

    dump = await _dump(app)
    assert SUBJECT not in dump
    assert "learner-other" in dump  # the dump does show subjects that were not erased
    done = (await client.get(f"{ERASURES}/{created['id']}", headers=admin())).json()
    assert done["status"] == "completed" and done["subject_id"] is None
    assert done["deleted"] == FULL_ERASURE
    # The other learner's connection and history are untouched.
    other = await client.get("/v1/subjects/learner-other/integrations/history", headers=admin())
    assert len(other.json()["items"]) == 2
    completed_at = datetime.fromisoformat(done["completed_at"])
    assert datetime.fromisoformat(done["retained_until"]) == completed_at + timedelta(days=90)


async def test_an_erasure_across_systems_leaves_no_trace_once_it_ends(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    """The dump test with registered systems, exhausted deliveries and a manual confirmation."""
    app.state.settings = make_settings(
        database_url, webhook_allow_hosts=["127.0.0.1"], webhook_retry_schedule="0"
    )
    app.state.webhook_allow = AllowList.parse(["127.0.0.1"])
    with receiving() as receiver:
        url = receiver.url
        await register(client, "progress", f"{url}/progress", ["consent.changed"], "confirm")
        await register(client, "support", f"{url}/support", [], "notify")
        await register(client, "archive", f"{url}/archive", ["consent.changed"], "confirm")
        receiver.default = Reply(500)
        await _learner_with_data(client)
        request = (await _request(client)).json()
        assert await work(app) == 1
        # Every first attempt fails, every second one too: the schedule is exhausted.
        while await deliver(app, at(timedelta(seconds=1))):
            pass
        receiver.default = Reply(204)
        token = receiver.received[-1].headers.get("webhook-confirm-token")
        assert SUBJECT in await _dump(app)  # bodies kept while the request is open
        url_of = f"{ERASURES}/{request['id']}/confirmations"
        for system_id in ("progress", "archive"):
            note = f"{SUBJECT} removed by hand from {system_id}"
            by_hand = await client.post(
                url_of, json={"system_id": system_id, "note": note}, headers=admin()
            )
            assert by_hand.status_code == 200, by_hand.text
        [support] = await deliveries(client, "support")
        assert support["status"] == "exhausted"
        retry = f"/v1/systems/support/deliveries/{support['message_id']}/retry"
        assert (await client.post(retry, headers=admin())).status_code == 202
        assert await deliver(app) == 1
    done = (await client.get(f"{ERASURES}/{request['id']}", headers=admin())).json()
    assert done["status"] == "completed"
    dump = await _dump(app)
    assert SUBJECT not in dump
    assert token is None or token not in dump


async def test_an_erased_subject_answers_410_and_its_events_are_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _learner_with_data(client)
    await _request(client)
    await work(app)
    base = f"/v1/subjects/{SUBJECT}"
    for response in (
        await client.get(f"{base}/consent", headers=admin()),
        await client.put(f"{base}/consent", json=choice(), headers=admin()),
        await client.patch(f"{base}/consent", json=choice(), headers=admin()),
        await client.get(f"{base}/consent/history", headers=admin()),
        await client.get(f"{base}/events", headers=admin()),
        await client.get(f"{base}/consent", headers=bearer(user_token(SUBJECT))),
        await client.get(f"{base}/integrations", headers=admin()),
        await client.get(f"{base}/integrations/history", headers=admin()),
        await client.get(f"{base}/integrations/cloud-drive", headers=admin()),
        await client.get(f"{base}/integrations/cloud-drive", headers=bearer(user_token(SUBJECT))),
        await client.post(
            f"{base}/integrations/cloud-drive/requests",
            json={"scopes": ["files.write"]},
            headers=admin(),
        ),
        await client.put(
            f"{base}/integrations/cloud-drive", json={"decision": "decline"}, headers=admin()
        ),
        await client.delete(f"{base}/integrations/cloud-drive", headers=admin()),
    ):
        assert_problem(response, 410, "subject_erased")
    result = await ingest(client, [event(SUBJECT, "necessary"), event("learner-other")])
    assert outcomes(result) == ["subject_erased", "accepted"]
    assert SUBJECT not in await _dump(app)


async def test_a_second_request_and_the_hashed_search_find_the_completed_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = (await _request(client)).json()
    again = await _request(client)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    await work(app)
    after = await _request(client)
    assert after.status_code == 200 and after.json()["status"] == "completed"
    listed = await client.get(ERASURES, params={"subject_id": SUBJECT}, headers=admin())
    assert [item["id"] for item in listed.json()["items"]] == [first["id"]]
    completed = await client.get(ERASURES, params={"status": "completed"}, headers=admin())
    assert [item["subject_id"] for item in completed.json()["items"]] == [None]


async def test_a_grace_period_delays_the_erasure_and_a_cancellation_stops_it(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    app.state.settings = make_settings(database_url, run_worker=False, erasure_grace_days=3)
    await _learner_with_data(client)
    request = (await _request(client)).json()
    assert await work(app, at(timedelta(days=2))) == 0
    cancelled = await client.delete(f"{ERASURES}/{request['id']}", headers=admin())
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await client.delete(f"{ERASURES}/{request['id']}", headers=admin())).status_code == 200
    assert await work(app, at(timedelta(days=4))) == 0
    consent = await client.get(f"/v1/subjects/{SUBJECT}/consent", headers=admin())
    assert consent.status_code == 200  # the account was restored
    # A new request after a cancellation is a new request, and this one runs.
    again = await _request(client)
    assert again.status_code == 202 and again.json()["id"] != request["id"]
    assert await work(app, at(timedelta(days=4))) == 1
    assert SUBJECT not in await _dump(app)


async def test_a_started_or_finished_erasure_cannot_be_cancelled(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    request = (await _request(client)).json()
    await work(app)
    assert_problem(
        await client.delete(f"{ERASURES}/{request['id']}", headers=admin()), 409, "conflict"
    )
    missing = f"{ERASURES}/00000000-0000-4000-8000-000000000000"
    assert_problem(await client.delete(missing, headers=admin()), 404, "not_found")
    assert_problem(await client.get(missing, headers=admin()), 404, "not_found")


async def test_a_failed_erasure_is_retried_and_leaves_no_partial_state(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _learner_with_data(client)
    request = (await _request(client)).json()
    erase = repository.erase_subjects

    async def crash_half_way(session: Any, *args: Any) -> dict[str, dict[str, int]]:
        await erase(session, *args)  # everything is done in the transaction ...
        raise ConnectionResetError("lost the database half-way")  # ... and then it is lost

    monkeypatch.setattr(repository, "erase_subjects", crash_half_way)
    assert await work(app) == 0
    failed = (await client.get(f"{ERASURES}/{request['id']}", headers=admin())).json()
    assert failed["status"] == "failed"
    # Nothing of the attempt remains: the subject is whole.
    assert (await client.get(f"/v1/subjects/{SUBJECT}/consent", headers=admin())).status_code == 200
    log = (await client.get("/v1/audit-log?action=erasure_failed", headers=admin())).json()
    assert log["items"][0]["details"]["error"] == "ConnectionResetError"

    monkeypatch.setattr(repository, "erase_subjects", erase)
    assert await work(app) == 0  # not due again yet: it backs off
    assert await work(app, at(timedelta(minutes=2))) == 1
    done = (await client.get(f"{ERASURES}/{request['id']}", headers=admin())).json()
    assert done["status"] == "completed"
    assert done["deleted"] == FULL_ERASURE
    assert SUBJECT not in await _dump(app)


async def test_two_workers_at_once_erase_each_request_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for number in range(6):
        await _learner_with_data(client, f"learner-{number}")
        await _request(client, f"learner-{number}")
    counts = await asyncio.gather(work(app), work(app))
    assert sum(counts) == 6
    log = (await client.get("/v1/audit-log?action=erasure_completed", headers=admin())).json()
    assert len(log["items"]) == 6
    dump = await _dump(app)
    assert not any(f"learner-{number}" in dump for number in range(6))


async def test_who_may_ask_for_and_read_erasures(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert_problem(await _request(client, **{"X-None": "1"}), 401, "unauthorized")
    other = await _request(client, **bearer(user_token("someone-else")))
    assert_problem(other, 403, "forbidden")
    events_key = await make_key(app, "ingest", "events:write")
    assert_problem(await _request(client, **bearer(events_key)), 403, "forbidden")
    own = await _request(client, **bearer(user_token(SUBJECT)))
    assert own.status_code == 202
    for headers in ({}, bearer(events_key)):
        response = await client.get(ERASURES, headers=headers)
        assert response.status_code == (401 if not headers else 403)
    # The learner reads its own requests (and only those: see test_learner.py).
    mine = await client.get(ERASURES, headers=bearer(user_token(SUBJECT)))
    assert [item["id"] for item in mine.json()["items"]] == [own.json()["id"]]
    entry = (await client.get("/v1/audit-log", headers=admin())).json()["items"][0]
    assert (entry["action"], entry["actor"]) == ("erasure_requested", "subject")
    assert entry["subject_hash"] == (await app.state.pseudonyms.get()).of(SUBJECT)


@pytest.mark.parametrize(
    "body",
    [{}, {"subject_id": "bad id"}, {"subject_id": SUBJECT, "reason": "Nope!"}, {"x": 1}],
)
async def test_a_bad_request_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_problem(await client.post(ERASURES, json=body, headers=admin()), 422, "validation_error")


async def test_the_service_erases_by_itself_within_seconds(
    client: httpx.AsyncClient, database_url: str
) -> None:
    from consentry.app import create_app

    app = create_app(make_settings(database_url, run_worker=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://own") as own:
            request = (await _request(own, "learner-quick")).json()
            async with asyncio.timeout(5):
                while True:
                    found = await own.get(f"{ERASURES}/{request['id']}", headers=admin())
                    if found.json()["status"] == "completed":
                        break
                    await asyncio.sleep(0.05)
        async with app.state.database.unit_of_work() as uow:
            for table in reversed(Base.metadata.sorted_tables):
                await uow.execute(text(f"DELETE FROM {table.name}"))


async def test_a_subject_that_fails_in_a_group_holds_back_no_other(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Subjects behind one erasure lock are erased together, in one transaction.
    candidates = [f"learner-{number}" for number in range(200)]
    group = [s for s in candidates if bucket(s) == bucket(candidates[0])][:3]
    failing = group[1]
    for subject in group:
        await _learner_with_data(client, subject)
        await _request(client, subject)
    erase = repository.erase_subjects

    async def fail_for_one(session: Any, hashes: dict[str, str], *args: Any) -> Any:
        if failing in hashes:
            raise ConnectionResetError("lost the database on this subject")
        return await erase(session, hashes, *args)

    monkeypatch.setattr(repository, "erase_subjects", fail_for_one)
    assert await work(app) == 2
    listed = (await client.get(ERASURES, headers=admin())).json()["items"]
    statuses = sorted(item["status"] for item in listed)
    assert statuses == ["completed", "completed", "failed"]
    dump = await _dump(app)
    assert failing in dump and not any(s in dump for s in group if s != failing)
