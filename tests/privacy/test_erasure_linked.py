"""Erasing a learner erases the anonymous subjects linked into it, in the same transaction."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.consent.linking_support import link, visitor_choice
from tests.events.support import ingest, outcomes
from tests.helpers import admin, anon_id, event
from tests.privacy.test_erasure import _dump, work
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

LEARNER = "learner-linked-5c1e"


async def test_erasing_a_learner_erases_its_linked_visitors(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first, _ = await visitor_choice(client, performance=True)
    # The visitor's own events (a necessary one passes for anyone).
    assert outcomes(await ingest(client, [event(first, "necessary")])) == ["accepted"]
    assert (await link(client, LEARNER, first)).json()["revision"] == 1
    # A second visit on another browser that never chose, linked as well; an unrelated visitor.
    second = anon_id()
    assert (await link(client, LEARNER, second)).status_code == 200
    bystander, _ = await visitor_choice(client, functional=True)
    dump = await _dump(app)
    assert first in dump and second in dump and LEARNER in dump

    body = {"subject_id": LEARNER, "reason": "account_deleted"}
    request = (await client.post("/v1/erasure-requests", json=body, headers=admin())).json()
    assert await work(app) == 1

    dump = await _dump(app)
    for gone in (LEARNER, first, second):
        assert gone not in dump
    assert bystander in dump
    done = (await client.get(f"/v1/erasure-requests/{request['id']}", headers=admin())).json()
    # The learner's state and linked record; the visitor's state, record and event.
    assert done["deleted"] == {
        "events": 1,
        "consent_states": 2,
        "consent_records": 2,
        "integrations": 0,
        "integration_records": 0,
    }
    assert_problem(await client.get(f"/v1/subjects/{first}/consent"), 410, "subject_erased")
    assert outcomes(await ingest(client, [event(first)])) == ["subject_erased"]
    # A used-up id stays used up once its link is gone with the erasure.
    assert_problem(await link(client, "learner-next", first), 409, "conflict")
    audit = await client.get("/v1/audit-log?action=erasure_completed", headers=admin())
    [entry] = audit.json()["items"]
    assert entry["details"]["linked_subjects"] == 2


async def test_erasing_a_visitor_alone_forgets_its_link(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    visitor, _ = await visitor_choice(client, performance=True)
    await link(client, LEARNER, visitor)
    body = {"subject_id": visitor, "reason": "account_deleted"}
    await client.post("/v1/erasure-requests", json=body, headers=admin())
    assert await work(app) == 1
    dump = await _dump(app)
    assert visitor not in dump
    assert LEARNER in dump  # the learner and its linked record stay
