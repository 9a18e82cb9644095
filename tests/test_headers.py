"""Security headers: nosniff and no-store on personal data and errors; routes' own headers kept."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from consentry.settings import Settings
from consentry.web.routes import DOCS_CSP
from tests.conftest import make_settings
from tests.helpers import admin, anon_id, bearer, choice, event, user_token

pytestmark = pytest.mark.anyio

SUBJECT = "learner-1"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
FIXED_ANON_ID = "anon:8a1f0c52-3b7e-4d9a-9c41-5e2b7f6d0a13"


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    return make_settings(database_url, **getattr(request, "param", {}))


def assert_guarded(response: httpx.Response) -> None:
    """The headers every response that may hold personal data carries."""
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == API_CSP
    assert "strict-transport-security" not in response.headers


async def test_personal_data_is_never_cached(client: httpx.AsyncClient) -> None:
    base = f"/v1/subjects/{SUBJECT}"
    written = await client.put(f"{base}/consent", json=choice(), headers=admin())
    batch = await client.post("/v1/events", json={"events": [event(SUBJECT)]}, headers=admin())
    erasure = await client.post(
        "/v1/erasure-requests",
        json={"subject_id": "learner-2", "reason": "account_deleted"},
        headers=admin(),
    )
    reads = [
        await client.get(f"{base}/consent", headers=bearer(user_token(SUBJECT))),
        await client.get(f"{base}/consent/history", headers=admin()),
        await client.get(f"{base}/events", headers=admin()),
        await client.get(f"{base}/export", headers=admin()),
        await client.get(f"{base}/providers", headers=admin()),
        await client.get("/v1/erasure-requests", headers=admin()),
        await client.get(f"/v1/erasure-requests/{erasure.json()['id']}", headers=admin()),
        await client.get("/v1/audit-log", headers=admin()),
    ]
    for response in [written, batch, erasure, *reads]:
        assert response.status_code < 300, response.text
        assert_guarded(response)


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/v1/subjects/learner-1/consent", {}),
        ("GET", "/v1/subjects/bad%20id/consent", {}),
        ("GET", "/v1/audit-log", {"Authorization": "Bearer nope"}),
        ("GET", "/v1/nowhere", {}),
        ("DELETE", "/v1/policy", {}),
        # A fixed id: parameters must be the same in every process that collects them.
        ("PUT", f"/v1/subjects/{FIXED_ANON_ID}/consent", {"Content-Type": "text/plain"}),
    ],
)
async def test_errors_are_never_cached(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(method, path, headers=headers, content=b"x")
    assert response.status_code >= 400
    assert response.headers["content-type"] == "application/problem+json"
    assert_guarded(response)


async def test_a_route_keeps_the_headers_it_set(client: httpx.AsyncClient) -> None:
    policy = await client.get("/v1/policy")
    assert policy.headers["cache-control"] == "public, max-age=300"
    assert policy.headers["x-content-type-options"] == "nosniff"
    # Pages bring their own policy: the JSON one would keep the API docs from loading.
    docs = await client.get("/docs")
    assert docs.headers["content-type"].startswith("text/html")
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert docs.headers["x-frame-options"] == "DENY"


async def test_a_header_is_never_sent_twice(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/subjects/{anon_id()}/consent")
    names = [name.lower() for name, _ in response.headers.multi_items()]
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize("settings", [{"hsts_seconds": 31_536_000}], indirect=True)
async def test_hsts_when_configured(client: httpx.AsyncClient, app: FastAPI) -> None:
    for response in [await client.get("/v1/policy"), await client.get("/v1/nowhere")]:
        assert response.headers["strict-transport-security"] == "max-age=31536000"
