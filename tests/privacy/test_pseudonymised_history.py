"""The history kept after an erasure: it verifies, is purged in time, and no subject route
reaches it, since a keyed hash is not a subject id."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from consentry.consent.models import ConsentRecord
from consentry.consent.repository import RECORD_COLUMNS
from consentry.db import ConstraintViolation, format_timestamp
from consentry.privacy.retention import run_retention
from tests.consent.test_history import verify_chain
from tests.helpers import admin, bearer, choice, make_key
from tests.privacy.test_erasure import ERASURES, SUBJECT, _dump, _learner_with_data, at, work

pytestmark = pytest.mark.anyio


async def _erased(app: FastAPI, client: httpx.AsyncClient) -> tuple[str, set[str]]:
    """Erase SUBJECT; its keyed hash as the audit log shows it, and its kept records' ids."""
    await _learner_with_data(client)
    history = await client.get(f"/v1/subjects/{SUBJECT}/consent/history", headers=admin())
    kept_ids = {record["id"] for record in history.json()["items"]}
    assert len(kept_ids) == 2
    body = {"subject_id": SUBJECT, "reason": "account_deleted"}
    assert (await client.post(ERASURES, json=body, headers=admin())).status_code == 202
    assert await work(app) == 1
    log = (await client.get("/v1/audit-log?action=erasure_completed", headers=admin())).json()
    subject_hash: str = log["items"][0]["subject_hash"]
    assert subject_hash == (await app.state.pseudonyms.get()).of(SUBJECT)
    return subject_hash, kept_ids


async def _kept(app: FastAPI, subject_hash: str) -> list[dict[str, Any]]:
    """The pseudonymised records of the subject with this keyed hash, newest first."""
    query = (
        select(*RECORD_COLUMNS)
        .where(ConsentRecord.subject_hash == subject_hash)
        .order_by(ConsentRecord.seq.desc())
    )
    async with app.state.database.reader() as reader:
        return [dict(row) for row in await reader.all(query)]


async def test_the_kept_history_holds_no_subject_id_and_still_verifies(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    subject_hash, kept_ids = await _erased(app, client)
    kept = await _kept(app, subject_hash)
    assert {record["id"] for record in kept} == kept_ids
    assert all(record["ip"] is None and record["user_agent"] is None for record in kept)
    verify_chain(
        [{**record, "recorded_at": format_timestamp(record["recorded_at"])} for record in kept]
    )
    async with app.state.database.reader() as reader:
        named = select(ConsentRecord.id).where(ConsentRecord.subject_id == subject_hash)
        assert await reader.all(named) == []
    assert SUBJECT not in await _dump(app)
    # The database refuses a kept record named like a subject, as an older release wrote it.
    with pytest.raises(ConstraintViolation):
        async with app.state.database.unit_of_work() as uow:
            await uow.execute(
                update(ConsentRecord)
                .where(ConsentRecord.subject_hash == subject_hash)
                .values(subject_id=subject_hash, subject_hash=None)
            )


async def test_no_subject_route_serves_the_kept_history_under_the_hash(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    subject_hash, kept_ids = await _erased(app, client)
    reader = bearer(await make_key(app, "reader", "consent:read"))
    base = f"/v1/subjects/{subject_hash}"
    routes = ("consent/history", "consent", "events", "providers", "export")
    for headers in (admin(), reader):
        for route in routes:
            response = await client.get(f"{base}/{route}", headers=headers)
            assert response.status_code in (200, 403), (route, response.text)
            assert not any(kept in response.text for kept in kept_ids), route
            assert SUBJECT not in response.text
    history = await client.get(f"{base}/consent/history", headers=reader)
    assert history.status_code == 200 and history.json()["items"] == []
    consent = await client.get(f"{base}/consent", headers=reader)
    assert consent.status_code == 200 and consent.json()["revision"] == 0
    export = (await client.get(f"{base}/export", headers=admin())).json()
    assert export["consent_history"] == [] and export["erasure_requests"] == []

    # A hash is a well-formed subject id of its own: writing under it starts a history of its
    # own at the first position, beside the kept one, instead of colliding with it.
    put = await client.put(f"{base}/consent", json=choice(performance=True), headers=admin())
    assert put.status_code == 200, put.text
    patch = await client.patch(f"{base}/consent", json=choice(), headers=admin())
    assert patch.status_code == 200, patch.text
    own = (await client.get(f"{base}/consent/history", headers=admin())).json()["items"]
    assert len(own) == 2 and own[-1]["prev_hash"] is None
    assert not kept_ids & {record["id"] for record in own}
    verify_chain(own)
    assert {record["id"] for record in await _kept(app, subject_hash)} == kept_ids

    # Neither the request nor the listing under the hash name the kept history's subject.
    listed = await client.get(ERASURES, params={"subject_id": subject_hash}, headers=admin())
    assert listed.status_code == 200 and listed.json()["items"] == []


async def test_the_retention_pass_still_purges_the_kept_history(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    subject_hash, kept_ids = await _erased(app, client)
    assert {record["id"] for record in await _kept(app, subject_hash)} == kept_ids
    now = at(timedelta(days=91))()
    report = await run_retention(app.state.database, now=now, retention_days=365)
    assert report.records_purged == 2
    assert await _kept(app, subject_hash) == []
