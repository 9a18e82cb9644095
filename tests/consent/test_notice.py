"""Notices: the defaults consent.js applied in an opt-out region, recorded but never a choice."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from consentry.consent.repository import StoredConsent
from consentry.consent.service import has_chosen
from consentry.db import utcnow
from tests.events.support import ingest, outcomes
from tests.helpers import POLICY_VERSION, admin, anon_id, choice, event

pytestmark = pytest.mark.anyio

GPC = {"Sec-GPC": "1"}


def _url(subject: str, rest: str = "consent") -> str:
    return f"/v1/subjects/{subject}/{rest}"


def notice(
    performance: bool = True,
    functional: bool = True,
    customization: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A notice body: by default the opt-out defaults without GPC, in California."""
    body = choice(performance, functional, customization, source="notice", region="US-CA")
    del body["method"]
    body.update(fields)
    return body


async def _history(client: httpx.AsyncClient, subject: str) -> list[dict[str, Any]]:
    response = await client.get(_url(subject, "consent/history"))
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _sources(state: dict[str, Any]) -> dict[str, str]:
    return {name: entry["source"] for name, entry in state["categories"].items()}


async def test_a_notice_is_recorded_and_judged_by_but_is_not_a_choice(
    client: httpx.AsyncClient,
) -> None:
    subject = anon_id()
    # Before the notice, a subject with no record is judged by the opt-in defaults.
    before = await ingest(client, [event(subject, "performance")])
    assert outcomes(before) == ["consent_denied"]

    response = await client.put(_url(subject), json=notice())
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["revision"] == 1
    assert state["stale"] is False
    assert state["regime"] == "opt_out"
    assert _sources(state) == {
        "necessary": "required",
        "performance": "default",
        "functional": "default",
        "customization": "default",
    }
    assert all(entry["updated_at"] for entry in state["categories"].values())
    [record] = await _history(client, subject)
    assert (record["source"], record["method"], record["region"]) == ("notice", None, "US-CA")
    assert record["changed"] == []

    # The event rule judges by it: what the defaults let the scripts do is kept.
    after = await ingest(client, [event(subject, "performance"), event(subject, "customization")])
    assert outcomes(after) == ["accepted", "accepted"]
    # A read without a region still knows where the notice was given.
    read = (await client.get(_url(subject))).json()
    assert read == {**state, "categories": read["categories"]}
    assert read["categories"] == state["categories"]


async def test_the_same_defaults_again_record_nothing(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    first = (await client.put(_url(subject), json=notice())).json()
    again = await client.put(_url(subject), json=notice())
    assert again.status_code == 200
    assert again.json()["revision"] == first["revision"] == 1
    assert again.json()["receipt_id"] == first["receipt_id"]
    assert len(await _history(client, subject)) == 1


async def test_gpc_changes_the_defaults_and_a_new_notice_records_them(
    client: httpx.AsyncClient,
) -> None:
    subject = anon_id()
    await client.put(_url(subject), json=notice())
    # The browser now sends GPC: the read shows the defaults that apply, the changed ones
    # without a time, since no record holds them yet.
    shown = (await client.get(_url(subject), headers=GPC)).json()
    assert shown["categories"]["performance"] == {
        "granted": False,
        "required": False,
        "source": "gpc",
        "updated_at": None,
    }
    assert shown["categories"]["functional"]["updated_at"] is not None
    assert shown["consent_mode"]["analytics_storage"] == "denied"

    body = notice(performance=False, customization=False)
    del body["region"]  # the notice's region is the recorded one
    recorded = await client.put(_url(subject), json=body, headers=GPC)
    assert recorded.status_code == 200, recorded.text
    state = recorded.json()
    assert state["revision"] == 2
    assert _sources(state)["performance"] == "gpc"
    assert (
        state["categories"]["functional"]["updated_at"]
        == shown["categories"]["functional"]["updated_at"]
    )
    newest = (await _history(client, subject))[0]
    assert (newest["source"], newest["gpc"], newest["changed"]) == (
        "notice",
        True,
        ["performance", "customization"],
    )
    result = await ingest(client, [event(subject, "performance"), event(subject, "functional")])
    assert outcomes(result) == ["consent_denied", "accepted"]


@pytest.mark.parametrize(
    ("body", "headers", "where"),
    [
        (notice(region="DE"), {}, "source"),
        (notice(region=None), {}, "source"),
        (notice(), GPC, "categories"),
        (notice(functional=False), {}, "categories"),
    ],
    ids=["opt-in region", "no region", "ignores gpc", "not the defaults"],
)
async def test_a_notice_records_only_the_defaults_of_an_opt_out_region(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str], where: str
) -> None:
    subject = anon_id()
    response = await client.put(_url(subject), json=body, headers=headers)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["body", where]
    assert (await client.get(_url(subject))).json()["revision"] == 0


async def test_a_notice_has_no_method(client: httpx.AsyncClient) -> None:
    response = await client.put(_url(anon_id()), json=notice(method="accept_all"))
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_the_first_choice_after_notices_is_recorded_even_when_equal(
    client: httpx.AsyncClient,
) -> None:
    subject = anon_id()
    noticed = (await client.put(_url(subject), json=notice())).json()
    granted_at = noticed["categories"]["performance"]["updated_at"]
    between = event(subject, "performance")
    # Accepting what the notice applied is a choice: recorded, although no value changes.
    chosen = await client.put(
        _url(subject), json=choice(True, True, True, method="accept_all", region="US-CA")
    )
    state = chosen.json()
    assert state["revision"] == 2
    assert set(_sources(state).values()) == {"required", "user"}
    # The grant did not break: it still runs from the notice.
    assert state["categories"]["performance"]["updated_at"] == granted_at
    assert outcomes(await ingest(client, [between])) == ["accepted"]
    assert [r["source"] for r in await _history(client, subject)] == ["banner", "notice"]


async def test_a_choice_wins_over_later_notices(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await client.put(_url(subject), json=choice(region="US-CA"))
    ignored = await client.put(_url(subject), json=notice())
    assert ignored.status_code == 200
    assert ignored.json()["revision"] == 1
    assert ignored.json()["categories"]["performance"]["granted"] is False
    assert [r["source"] for r in await _history(client, subject)] == ["banner"]


async def test_a_notice_keeps_the_banner_asking_and_is_never_stale(
    client: httpx.AsyncClient,
) -> None:
    subject = anon_id()
    old = notice(policy_version="2025-09-01")
    assert (await client.put(_url(subject), json=old)).status_code == 200
    state = (await client.get(_url(subject))).json()
    # Not a choice, so nothing to ask again; the banner asks because nobody has chosen.
    assert state["stale"] is False
    assert state["policy_version"] == POLICY_VERSION
    assert "user" not in _sources(state).values()


async def test_in_an_opt_in_region_the_defaults_show_whatever_was_noticed(
    client: httpx.AsyncClient,
) -> None:
    subject = anon_id()
    await client.put(_url(subject), json=notice())
    travelling = (await client.get(_url(subject), params={"region": "DE"})).json()
    assert (travelling["region"], travelling["regime"]) == ("DE", "opt_in")
    assert travelling["categories"]["performance"] == {
        "granted": False,
        "required": False,
        "source": "default",
        "updated_at": None,
    }
    # No notice there: consent.js records none in an opt-in region.
    body = notice(False, False, False, region="DE")
    assert (await client.put(_url(subject), json=body)).status_code == 422


async def test_the_export_shows_the_notice_as_recorded(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await client.put(_url(subject), json=notice(False, True, False), headers=GPC)
    token_free = await client.get(_url(subject, "export"), headers=admin())
    assert token_free.status_code == 200
    consent = token_free.json()["consent"]
    assert consent["categories"]["performance"]["source"] == "gpc"
    assert consent["categories"]["functional"]["granted"] is True
    assert consent["region"] == "US-CA"


def _stored(**sources: str) -> StoredConsent:
    categories = {
        name: {"granted": True, "source": source, "updated_at": "2026-12-01T00:00:00.000000Z"}
        for name, source in {"necessary": "required", **sources}.items()
    }
    return StoredConsent(
        revision=1,
        categories=categories,
        policy_version=POLICY_VERSION,
        region="US-CA",
        language=None,
        updated_at=utcnow(),
        receipt_id="r",
        last_hash="h",
    )


def test_has_chosen() -> None:
    """The one predicate: a choice leaves `user` or `admin` on some category, a notice never."""
    assert has_chosen(None) is False
    assert not has_chosen(_stored(performance="default", functional="gpc", customization="gpc"))
    assert has_chosen(_stored(performance="user", functional="default", customization="gpc"))
    assert has_chosen(_stored(performance="default", functional="default", customization="admin"))


async def test_a_first_patch_naming_nothing_optional_accepts_what_was_shown(
    client: httpx.AsyncClient,
) -> None:
    """Such a PATCH is a choice (the defaults, confirmed), so it must read as one."""
    subject = anon_id()
    body = {"categories": {}, "policy_version": POLICY_VERSION, "source": "api", "region": "DE"}
    state = (await client.patch(_url(subject), json=body)).json()
    assert state["revision"] == 1
    assert set(_sources(state).values()) == {"required", "user"}
    assert not any(
        entry["granted"] for name, entry in state["categories"].items() if name != "necessary"
    )
