"""Recording choices: PUT and PATCH, what counts as a change, sources, stamps and preconditions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import OLD_POLICY_VERSION, POLICY_VERSION, admin, anon_id, choice, make_key

pytestmark = pytest.mark.anyio


def _url(subject: str) -> str:
    return f"/v1/subjects/{subject}/consent"


async def _history(client: httpx.AsyncClient, subject: str) -> list[dict[str, Any]]:
    response = await client.get(f"{_url(subject)}/history", headers=admin())
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_put_records_the_choice(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    response = await client.put(
        _url(subject), json=choice(performance=True, region="de", language="de-DE")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == 1
    assert body["region"] == "DE"
    assert body["language"] == "de-DE"
    assert {k: v["granted"] for k, v in body["categories"].items()} == {
        "necessary": True,
        "performance": True,
        "functional": False,
        "customization": False,
    }
    assert {v["source"] for k, v in body["categories"].items() if k != "necessary"} == {"user"}
    assert body["categories"]["necessary"]["source"] == "required"
    updated = {v["updated_at"] for v in body["categories"].values()}
    assert updated == {body["updated_at"]}
    assert body["updated_at"].endswith("Z")
    [record] = await _history(client, subject)
    assert record["id"] == body["receipt_id"]
    assert record["changed"] == ["performance"]
    assert record["source"] == "banner"
    assert record["method"] == "custom"
    assert record["actor"] == "subject"
    assert record["region"] == "DE"
    assert record["language"] == "de-DE"
    assert record["policy_version"] == POLICY_VERSION
    assert record["gpc"] is False
    assert record["prev_hash"] is None
    assert record["recorded_at"] == body["updated_at"]
    # A GET afterwards shows exactly what the PUT answered, with the same ETag.
    read = await client.get(_url(subject))
    assert read.json() == body
    assert read.headers["etag"] == response.headers["etag"]


async def test_first_choice_equal_to_defaults_is_recorded(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    body = (await client.put(_url(subject), json=choice(method="reject_all"))).json()
    assert body["revision"] == 1
    [record] = await _history(client, subject)
    assert record["changed"] == []
    assert record["method"] == "reject_all"


async def test_a_write_that_changes_nothing_appends_nothing(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    first = (await client.put(_url(subject), json=choice(functional=True))).json()
    again = await client.put(
        _url(subject), json=choice(functional=True, source="preference_center", language="fr")
    )
    assert again.status_code == 200
    assert again.json() == first
    assert again.json()["receipt_id"] == first["receipt_id"]
    patch = await client.patch(
        _url(subject),
        json={
            "categories": {"functional": True},
            "policy_version": POLICY_VERSION,
            "source": "api",
        },
    )
    assert patch.json()["revision"] == 1
    assert len(await _history(client, subject)) == 1


async def test_refusal_is_recorded_like_a_grant(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await client.put(_url(subject), json=choice(True, True, True, method="accept_all"))
    body = (await client.put(_url(subject), json=choice(method="reject_all"))).json()
    assert body["revision"] == 2
    newest, oldest = await _history(client, subject)
    assert newest["changed"] == ["performance", "functional", "customization"]
    assert newest["categories"] == {
        "necessary": True,
        "performance": False,
        "functional": False,
        "customization": False,
    }
    assert newest["prev_hash"] == oldest["hash"]


async def test_unchanged_category_keeps_its_time(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    first = (await client.put(_url(subject), json=choice(performance=True))).json()
    second = (
        await client.put(_url(subject), json=choice(performance=True, functional=True))
    ).json()
    # The grant of `performance` has run unbroken since the first write.
    assert second["categories"]["performance"]["updated_at"] == first["updated_at"]
    assert second["categories"]["functional"]["updated_at"] == second["updated_at"]
    assert second["updated_at"] > first["updated_at"]


async def test_patch_changes_only_named_categories(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await client.put(_url(subject), json=choice(performance=True, customization=True))
    body = (
        await client.patch(
            _url(subject),
            json={
                "categories": {"customization": False},
                "policy_version": POLICY_VERSION,
                "source": "preference_center",
            },
        )
    ).json()
    granted = {k: v["granted"] for k, v in body["categories"].items()}
    assert granted == {
        "necessary": True,
        "performance": True,
        "functional": False,
        "customization": False,
    }
    newest = (await _history(client, subject))[0]
    assert newest["changed"] == ["customization"]
    assert newest["method"] is None


async def test_first_patch_fills_other_categories_from_defaults(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    response = await client.patch(
        _url(subject),
        json={
            "categories": {"functional": False},
            "policy_version": POLICY_VERSION,
            "source": "banner",
            "region": "US-CA",
        },
        headers={"Sec-GPC": "1"},
    )
    categories = response.json()["categories"]
    assert categories["functional"]["granted"] is False
    assert categories["functional"]["source"] == "user"
    assert categories["performance"]["granted"] is False
    assert categories["performance"]["source"] == "gpc"
    [record] = await _history(client, subject)
    assert record["gpc"] is True
    assert record["changed"] == ["functional"]


async def test_explicit_choice_wins_over_gpc(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    body = (
        await client.put(
            _url(subject), json=choice(performance=True, region="US-CA"), headers={"Sec-GPC": "1"}
        )
    ).json()
    assert body["categories"]["performance"] == {
        "granted": True,
        "required": False,
        "source": "user",
        "updated_at": body["updated_at"],
    }
    later = await client.get(_url(subject), headers={"Sec-GPC": "1"})
    assert later.json()["categories"]["performance"]["granted"] is True


async def test_necessary_may_be_named_as_granted(client: httpx.AsyncClient) -> None:
    body = choice()
    body["categories"]["necessary"] = True
    assert (await client.put(_url(anon_id()), json=body)).status_code == 200


@pytest.mark.parametrize(
    ("category", "value", "code"),
    [("necessary", False, "required_category"), ("advertising", False, "validation_error")],
)
async def test_refused_categories_record_nothing(
    client: httpx.AsyncClient, category: str, value: bool, code: str
) -> None:
    subject = anon_id()
    body = choice()
    body["categories"][category] = value
    for method in ("PUT", "PATCH"):
        response = await client.request(method, _url(subject), json=body)
        assert response.status_code == 422
        assert response.json()["code"] == code
    assert await _history(client, subject) == []


async def test_put_must_name_every_optional_category(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    body = choice()
    del body["categories"]["customization"]
    response = await client.put(_url(subject), json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["body", "categories", "customization"]
    assert await _history(client, subject) == []


async def test_unknown_policy_version_is_refused(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    response = await client.put(_url(subject), json=choice(policy_version="1999-01-01"))
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_policy_version"
    assert await _history(client, subject) == []


async def test_older_policy_version_is_stale_until_confirmed(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    old = (await client.put(_url(subject), json=choice(policy_version=OLD_POLICY_VERSION))).json()
    assert old["stale"] is True
    assert old["policy_version"] == OLD_POLICY_VERSION
    confirmed = (await client.put(_url(subject), json=choice())).json()
    assert confirmed["stale"] is False
    assert confirmed["revision"] == 2
    newest = (await _history(client, subject))[0]
    assert newest["changed"] == []
    assert newest["policy_version"] == POLICY_VERSION


async def test_sources_and_actors_by_caller(app: FastAPI, client: httpx.AsyncClient) -> None:
    relay = await make_key(app, "frontend-relay", "consent:write", "consent:read")
    subject = "learner-42"
    relayed = await client.put(
        _url(subject), json=choice(performance=True), headers={"Authorization": f"Bearer {relay}"}
    )
    assert relayed.json()["categories"]["performance"]["source"] == "user"
    by_admin = await client.put(_url(subject), json=choice(), headers=admin())
    assert by_admin.json()["categories"]["performance"]["source"] == "admin"
    newest, oldest = await _history(client, subject)
    assert (oldest["actor"], newest["actor"]) == ("frontend-relay", "admin")


async def test_if_match(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    etag = (await client.get(_url(subject))).headers["etag"]
    ok = await client.put(_url(subject), json=choice(functional=True), headers={"If-Match": etag})
    assert ok.status_code == 200
    stale = await client.put(_url(subject), json=choice(), headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    stale_patch = await client.patch(
        _url(subject),
        json={"categories": {}, "policy_version": POLICY_VERSION, "source": "api"},
        headers={"If-Match": etag},
    )
    assert stale_patch.status_code == 412
    fresh = ok.headers["etag"]
    listed = await client.put(
        _url(subject), json=choice(), headers={"If-Match": f'"nope", {fresh}'}
    )
    assert listed.status_code == 200
    anything = await client.put(_url(subject), json=choice(True), headers={"If-Match": "*"})
    assert anything.status_code == 200
    assert len(await _history(client, subject)) == 3


async def test_stored_address_is_truncated(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await client.put(
        _url(subject),
        json=choice(),
        headers={"X-Forwarded-For": "203.0.113.77", "User-Agent": "Browser/1.0"},
    )
    [record] = await _history(client, subject)
    # No proxy is trusted by default, so the forwarded header is ignored.
    assert record["ip"] == "198.51.100.0/24"
    assert record["user_agent"] == "Browser/1.0"


async def test_if_match_of_any_default_view_holds_until_the_first_choice(
    client: httpx.AsyncClient,
) -> None:
    subject = anon_id()
    etag = (await client.get(_url(subject), params={"region": "US-CA"})).headers["etag"]
    assert etag.startswith('"0-')
    first = await client.put(_url(subject), json=choice(), headers={"If-Match": etag})
    assert first.status_code == 200
    assert first.headers["etag"].startswith('"1-')
    again = await client.put(_url(subject), json=choice(True), headers={"If-Match": etag})
    assert again.status_code == 412
