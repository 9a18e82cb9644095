"""Consent of a subject with no recorded choice: regimes, regions, GPC and Consent Mode."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import make_settings
from tests.helpers import POLICY_VERSION, admin, anon_id

pytestmark = pytest.mark.anyio


async def _read(client: httpx.AsyncClient, subject: str, **kwargs: object) -> httpx.Response:
    return await client.get(f"/v1/subjects/{subject}/consent", **kwargs)  # type: ignore[arg-type]


def _granted(body: dict[str, object]) -> dict[str, bool]:
    categories = body["categories"]
    assert isinstance(categories, dict)
    return {name: entry["granted"] for name, entry in categories.items()}


async def test_no_region_means_opt_in(client: httpx.AsyncClient) -> None:
    response = await _read(client, "learner-1", headers=admin())
    assert response.status_code == 200
    body = response.json()
    assert body["subject_id"] == "learner-1"
    assert body["regime"] == "opt_in"
    assert body["region"] is None
    assert body["revision"] == 0
    assert body["stale"] is False
    assert body["policy_version"] == POLICY_VERSION
    assert body["receipt_id"] is None
    assert body["updated_at"] is None
    assert _granted(body) == {
        "necessary": True,
        "performance": False,
        "functional": False,
        "customization": False,
    }
    assert body["categories"]["necessary"] == {
        "granted": True,
        "required": True,
        "source": "required",
        "updated_at": None,
    }
    assert body["categories"]["performance"]["source"] == "default"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("region", "regime", "shown"),
    [
        ("DE", "opt_in", "DE"),
        ("GB", "opt_in", "GB"),
        ("CH", "opt_in", "CH"),
        ("NO", "opt_in", "NO"),
        ("FR-75", "opt_in", "FR-75"),
        ("US-CA", "opt_out", "US-CA"),
        ("us-ca", "opt_out", "US-CA"),
        ("US-NY", "opt_in", "US-NY"),
        ("US", "opt_in", "US"),
        ("JP", "opt_in", "JP"),
    ],
)
async def test_regime_follows_region(
    client: httpx.AsyncClient, region: str, regime: str, shown: str
) -> None:
    body = (await _read(client, "learner-1", params={"region": region}, headers=admin())).json()
    assert body["regime"] == regime
    assert body["region"] == shown
    optional_granted = regime == "opt_out"
    granted = _granted(body)
    assert granted["necessary"] is True
    assert [granted[c] for c in ("performance", "functional", "customization")] == [
        optional_granted
    ] * 3


@pytest.mark.parametrize("region", ["Germany", "D", "DE-", "DE-BAYERN", "1A", "DE_BY", ""])
async def test_malformed_region_is_refused(client: httpx.AsyncClient, region: str) -> None:
    response = await _read(client, "learner-1", params={"region": region}, headers=admin())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"


async def test_gpc_denies_performance_and_customization_under_opt_out(
    client: httpx.AsyncClient,
) -> None:
    response = await _read(
        client, "learner-1", params={"region": "US-CA"}, headers={**admin(), "Sec-GPC": "1"}
    )
    categories = response.json()["categories"]
    assert categories["performance"] == {
        "granted": False,
        "required": False,
        "source": "gpc",
        "updated_at": None,
    }
    assert categories["customization"]["source"] == "gpc"
    assert categories["customization"]["granted"] is False
    assert categories["functional"] == {
        "granted": True,
        "required": False,
        "source": "default",
        "updated_at": None,
    }


async def test_gpc_under_opt_in_changes_nothing_so_source_stays_default(
    client: httpx.AsyncClient,
) -> None:
    body = (
        await _read(
            client, "learner-1", params={"region": "DE"}, headers={**admin(), "Sec-GPC": "1"}
        )
    ).json()
    assert {
        entry["source"] for name, entry in body["categories"].items() if name != "necessary"
    } == {"default"}


async def test_consent_mode_follows_categories(client: httpx.AsyncClient) -> None:
    body = (
        await _read(
            client, "learner-1", params={"region": "US-CA"}, headers={**admin(), "Sec-GPC": "1"}
        )
    ).json()
    assert body["consent_mode"] == {
        "security_storage": "granted",
        "analytics_storage": "denied",
        "functionality_storage": "granted",
        "personalization_storage": "denied",
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    }


async def test_anonymous_visitor_reads_without_token(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    response = await _read(client, subject)
    assert response.status_code == 200
    assert response.json()["subject_id"] == subject


async def test_etag_and_if_none_match(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    first = await _read(client, subject, params={"region": "DE"})
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    again = await _read(client, subject, params={"region": "DE"}, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other_region = await _read(
        client, subject, params={"region": "US-CA"}, headers={"If-None-Match": etag}
    )
    assert other_region.status_code == 200
    assert other_region.headers["etag"] != etag


async def test_region_header_when_configured(database_url: str) -> None:
    from consentry.app import create_app

    app = create_app(make_settings(database_url, region_header="CF-IPCountry"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        subject = anon_id()
        from_header = await _read(client, subject, headers={"CF-IPCountry": "US-CA"})
        assert from_header.json()["regime"] == "opt_out"
        assert "CF-IPCountry" in from_header.headers["vary"]
        query_wins = await _read(
            client, subject, params={"region": "DE"}, headers={"CF-IPCountry": "US-CA"}
        )
        assert query_wins.json()["region"] == "DE"
        garbage = await _read(client, subject, headers={"CF-IPCountry": "T1-unknown"})
        assert garbage.status_code == 200
        assert garbage.json()["regime"] == "opt_in"


async def test_configured_opt_out_states(database_url: str) -> None:
    from consentry.app import create_app

    app = create_app(make_settings(database_url, opt_out_regions=["US-VA", "us-ri"]))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        for region, regime in [
            ("US-VA", "opt_out"),
            ("US-RI", "opt_out"),
            ("US-CA", "opt_out"),
            ("US-TX", "opt_out"),
            ("US-WA", "opt_in"),
        ]:
            body = (await _read(client, anon_id(), params={"region": region})).json()
            assert body["regime"] == regime, region
