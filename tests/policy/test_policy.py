"""`GET /v1/policy` and the policy file behind it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from consentry.policy import load_policy
from tests.conftest import make_settings
from tests.helpers import OLD_POLICY_VERSION, POLICY_VERSION

pytestmark = pytest.mark.anyio


async def test_policy_is_public_and_cacheable(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/policy")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    body = response.json()
    assert body["version"] == POLICY_VERSION
    assert [v["version"] for v in body["versions"]] == [POLICY_VERSION, OLD_POLICY_VERSION]
    assert [(c["id"], c["required"]) for c in body["categories"]] == [
        ("necessary", True),
        ("performance", False),
        ("functional", False),
        ("customization", False),
    ]
    assert all(c["name"] and c["description"] and c["if_disabled"] for c in body["categories"])
    # The twelve US states whose laws require honouring an opt-out preference signal.
    assert body["regimes"]["opt_out"]["regions"] == [
        "US-CA", "US-CO", "US-CT", "US-DE", "US-MD", "US-MN",
        "US-MT", "US-NE", "US-NH", "US-NJ", "US-OR", "US-TX",
    ]  # fmt: skip
    assert {"DE", "GB", "CH", "NO", "IS", "LI"} <= set(body["regimes"]["opt_in"]["regions"])
    assert body["unknown_region_regime"] == "opt_in"
    assert body["gpc_categories"] == ["customization", "performance"]
    assert body["consent_mode"]["analytics_storage"] == "performance"


async def test_policy_etag(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/v1/policy")).headers["etag"]
    cached = await client.get("/v1/policy", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.headers["cache-control"] == "public, max-age=300"
    weak = await client.get("/v1/policy", headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304
    other = await client.get("/v1/policy", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200


def _write_policy(tmp_path: Path, **changes: object) -> Path:
    document = json.loads(
        (Path(__file__).parents[2] / "src/consentry/policy/default_policy.json").read_text()
    )
    document.update(changes)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return path


def test_replacement_policy_file(tmp_path: Path) -> None:
    versions = [
        {"version": "2027-01-01", "published_at": "2027-01-01", "summary": "new"},
        {"version": POLICY_VERSION, "published_at": "2026-11-01", "summary": "old"},
    ]
    policy = load_policy(_write_policy(tmp_path, version="2027-01-01", versions=versions), [])
    assert policy.version == "2027-01-01"
    assert policy.knows(POLICY_VERSION)
    assert not policy.knows(OLD_POLICY_VERSION)


@pytest.mark.parametrize(
    "changes",
    [
        {"version": "2030-01-01"},
        {"categories": []},
        {"regimes": {"opt_in": {"law": "GDPR", "regions": []}}},
        {"unexpected": True},
    ],
)
def test_invalid_policy_file_is_refused(tmp_path: Path, changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        load_policy(_write_policy(tmp_path, **changes), [])


async def test_the_policy_says_where_people_read_it(database_url: str) -> None:
    from consentry.app import create_app

    url = "https://learn.example.edu/data-tracking-policy"
    for configured, expected in [({"policy_url": url}, url), ({}, None)]:
        app = create_app(make_settings(database_url, **configured))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/v1/policy")).json()["url"] == expected
