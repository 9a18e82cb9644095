"""Linking: a visitor's banner choice follows them into their account, and only when it may."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from consentry.consent.models import ConsentState
from tests.consent.linking_support import (
    age_records,
    history,
    link,
    set_source,
    verify_chain,
    visitor_choice,
)
from tests.helpers import (
    OLD_POLICY_VERSION,
    POLICY_VERSION,
    admin,
    anon_id,
    bearer,
    choice,
    make_key,
    user_token,
)
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

OPTIONAL = ("performance", "functional", "customization")


def _granted(state: dict[str, object]) -> dict[str, bool]:
    categories = state["categories"]
    assert isinstance(categories, dict)
    return {name: entry["granted"] for name, entry in categories.items()}


async def test_a_fresh_choice_carries_over_to_a_learner_without_one(
    client: httpx.AsyncClient,
) -> None:
    visitor, receipt = await visitor_choice(client, performance=True, customization=True)
    response = await link(client, "learner-fresh", visitor)
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["subject_id"] == "learner-fresh"
    assert state["revision"] == 1 and state["stale"] is False
    assert _granted(state) == {
        "necessary": True,
        "performance": True,
        "functional": False,
        "customization": True,
    }
    assert {state["categories"][c]["source"] for c in OPTIONAL} == {"user"}
    assert (state["region"], state["language"]) == ("DE", "de")
    assert response.headers["etag"]
    # The state the learner reads from now on is the one the link answered.
    read = await client.get(
        "/v1/subjects/learner-fresh/consent", headers=bearer(user_token("learner-fresh"))
    )
    assert read.json() == state

    [record] = await history(client, "learner-fresh")
    assert record["id"] == state["receipt_id"]
    assert record["linked_from"] == receipt
    assert (record["method"], record["actor"]) == ("linked", "subject")
    assert (record["source"], record["policy_version"]) == ("banner", POLICY_VERSION)
    assert record["categories"] == _granted(state)
    assert record["changed"] == ["performance", "customization"]
    assert record["prev_hash"] is None
    verify_chain([record])
    # The visitor's own history is untouched and names no link.
    [visited] = await history(client, visitor)
    assert visited["id"] == receipt and "linked_from" not in visited


async def test_a_stale_choice_is_replaced_and_the_chain_goes_on(
    client: httpx.AsyncClient,
) -> None:
    learner = "learner-stale"
    old = choice(performance=False, policy_version=OLD_POLICY_VERSION)
    assert (
        await client.put(f"/v1/subjects/{learner}/consent", json=old, headers=admin())
    ).is_success
    visitor, receipt = await visitor_choice(client, performance=True, functional=True)
    state = (await link(client, learner, visitor)).json()
    assert state["revision"] == 2 and state["stale"] is False
    assert state["policy_version"] == POLICY_VERSION
    assert _granted(state)["performance"] is True
    records = await history(client, learner)
    assert [r.get("linked_from") for r in records] == [receipt, None]
    assert "linked_from" not in records[1]  # an ordinary record has no such field at all
    assert records[0]["changed"] == ["performance", "functional"]
    verify_chain(records)


async def test_a_learner_with_a_current_choice_keeps_it(client: httpx.AsyncClient) -> None:
    learner = "learner-current"
    mine = choice(performance=False, functional=True)
    put = await client.put(f"/v1/subjects/{learner}/consent", json=mine, headers=admin())
    visitor, _ = await visitor_choice(client, performance=True, customization=True)
    response = await link(client, learner, visitor)
    assert response.status_code == 200
    assert response.json() == put.json()
    assert len(await history(client, learner)) == 1
    # Used up all the same.
    assert_problem(await link(client, learner, visitor), 409, "conflict")


async def test_a_choice_older_than_a_day_does_not_carry_over(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    visitor, _ = await visitor_choice(client, performance=True)
    await age_records(app, visitor, timedelta(hours=24, minutes=1))
    response = await link(client, "learner-late", visitor)
    assert response.status_code == 200
    state = response.json()
    assert state["revision"] == 0 and state["receipt_id"] is None
    assert _granted(state)["performance"] is False
    assert await history(client, "learner-late") == []
    # The lock placeholder of a learner without a record does not outlive the link.
    async with app.state.database.reader() as reader:
        rows = await reader.all(
            select(ConsentState).where(ConsentState.subject_id == "learner-late")
        )
    assert rows == []
    assert_problem(await link(client, "learner-late", visitor), 409, "conflict")


async def test_a_choice_just_inside_the_day_carries_over(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    visitor, receipt = await visitor_choice(client, functional=True)
    await age_records(app, visitor, timedelta(hours=23, minutes=59))
    state = (await link(client, "learner-in-time", visitor)).json()
    assert state["revision"] == 1 and _granted(state)["functional"] is True
    assert (await history(client, "learner-in-time"))[0]["linked_from"] == receipt


async def test_the_latest_choice_is_the_one_carried(client: httpx.AsyncClient) -> None:
    visitor, _ = await visitor_choice(client, performance=True)
    again = choice(performance=False, functional=True)
    second = (await client.put(f"/v1/subjects/{visitor}/consent", json=again)).json()
    state = (await link(client, "learner-latest", visitor)).json()
    assert _granted(state) == {**_granted(second), "necessary": True}
    assert (await history(client, "learner-latest"))[0]["linked_from"] == second["receipt_id"]


async def test_a_visitor_who_never_chose_is_used_up_and_carries_nothing(
    client: httpx.AsyncClient,
) -> None:
    visitor = anon_id()
    assert (await client.get(f"/v1/subjects/{visitor}/consent")).status_code == 200
    response = await link(client, "learner-nochoice", visitor)
    assert response.status_code == 200 and response.json()["revision"] == 0
    assert_problem(await link(client, "learner-nochoice", visitor), 409, "conflict")


async def test_an_id_links_once_into_anyone(client: httpx.AsyncClient) -> None:
    visitor, _ = await visitor_choice(client, performance=True)
    assert (await link(client, "learner-first", visitor)).status_code == 200
    again = await link(client, "learner-first", visitor)
    assert_problem(again, 409, "conflict")
    other = await link(client, "learner-second", visitor)
    assert_problem(other, 409, "conflict")
    assert await history(client, "learner-second") == []


async def test_notices_are_not_choices(app: FastAPI, client: httpx.AsyncClient) -> None:
    """A visitor with only notices carries nothing; a learner's notices are no choice."""
    visitor, _ = await visitor_choice(client, performance=True)
    await set_source(app, visitor, "notice")
    state = (await link(client, "learner-notice-1", visitor)).json()
    assert state["revision"] == 0

    learner = "learner-notice-2"
    await client.put(f"/v1/subjects/{learner}/consent", json=choice(), headers=admin())
    await set_source(app, learner, "notice")
    visitor, receipt = await visitor_choice(client, customization=True)
    state = (await link(client, learner, visitor)).json()
    assert state["revision"] == 2 and _granted(state)["customization"] is True
    records = await history(client, learner)
    assert records[0]["linked_from"] == receipt
    assert [r["source"] for r in records] == ["banner", "notice"]


async def test_only_the_learners_own_token_may_link(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    visitor, _ = await visitor_choice(client, performance=True)
    path = "/v1/subjects/learner-own/consent/link"
    body = {"anonymous_id": visitor}
    someone_else = bearer(user_token("learner-intruder"))
    assert_problem(await client.post(path, json=body, headers=someone_else), 403, "forbidden")
    assert_problem(await client.post(path, json=body, headers=admin()), 403, "forbidden")
    writer = await make_key(app, "relay", "consent:write", "consent:read")
    assert_problem(await client.post(path, json=body, headers=bearer(writer)), 403, "forbidden")
    assert_problem(await client.post(path, json=body), 401, "unauthorized")
    # The visitor itself cannot push its choice into an account either.
    visitor_path = f"/v1/subjects/{visitor}/consent/link"
    assert_problem(await client.post(visitor_path, json=body), 401, "unauthorized")
    # None of those used the id up.
    assert (await link(client, "learner-own", visitor)).json()["revision"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"anonymous_id": "u-123"},
        {"anonymous_id": "anon:not-a-uuid"},
        {"anonymous_id": "anon:0b6e3f5c-8a41-1d2e-9c7b-1f2a3b4c5d6e"},  # version 1
        {"anonymous_id": "ANON:0B6E3F5C-8A41-4D2E-9C7B-1F2A3B4C5D6E"},
        {"anonymous_id": None},
        {},
        {"anonymous_id": "anon:0b6e3f5c-8a41-4d2e-9c7b-1f2a3b4c5d6e", "extra": 1},
    ],
)
async def test_a_malformed_body_is_refused(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post(
        "/v1/subjects/learner-bad/consent/link",
        json=body,
        headers=bearer(user_token("learner-bad")),
    )
    assert_problem(response, 422, "validation_error")


async def test_an_anonymous_subject_is_not_linked_into(client: httpx.AsyncClient) -> None:
    target = anon_id()
    response = await link(client, target, anon_id())
    assert_problem(response, 422, "validation_error")


async def test_an_erased_learner_answers_410_and_uses_nothing_up(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from tests.privacy.test_erasure import work

    learner = "learner-gone"
    await client.put(f"/v1/subjects/{learner}/consent", json=choice(), headers=admin())
    erasure = {"subject_id": learner, "reason": "account_deleted"}
    assert (await client.post("/v1/erasure-requests", json=erasure, headers=admin())).is_success
    await work(app)
    visitor, _ = await visitor_choice(client, performance=True)
    assert_problem(await link(client, learner, visitor), 410, "subject_erased")
    assert (await link(client, "learner-after", visitor)).json()["revision"] == 1


async def test_the_export_holds_the_linked_record_as_the_history_does(
    client: httpx.AsyncClient,
) -> None:
    learner = "learner-export"
    old = choice(policy_version=OLD_POLICY_VERSION)
    await client.put(f"/v1/subjects/{learner}/consent", json=old, headers=admin())
    visitor, receipt = await visitor_choice(client, functional=True)
    await link(client, learner, visitor)
    response = await client.get(
        f"/v1/subjects/{learner}/export", headers=bearer(user_token(learner))
    )
    assert response.status_code == 200
    exported = response.json()["consent_history"]
    assert [r.get("linked_from") for r in exported] == [None, receipt]
    assert "linked_from" not in exported[0]
    assert list(reversed(exported)) == await history(client, learner)
