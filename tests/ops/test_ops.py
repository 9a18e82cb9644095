"""Health, readiness and the committed OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from consentry import migrations
from consentry.app import create_app
from consentry.settings import Settings

pytestmark = pytest.mark.anyio

OPENAPI_FILE = Path(__file__).parents[2] / "openapi" / "openapi.json"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_schema_is_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_readyz_fails_when_schema_is_behind(settings: Settings) -> None:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        app.state.schema_head = "9999"  # as if this code carried a migration not yet applied
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["code"] == "service_unavailable"
        assert "Retry-After" in response.headers


async def test_readyz_stays_ready_on_a_newer_releases_schema(settings: Settings) -> None:
    """During a rolling upgrade the old pods serve on the schema the new release migrated to."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        # As if this code were an older release that knows neither the schema's revision...
        app.state.schema_head, app.state.schema_revisions = "0001", frozenset({"0001"})
        response = await client.get("/readyz")
        assert response.status_code == 200
        head = migrations.head_revision()
        assert response.json() == {"status": "ready", "schema": head}
        # ...while one behind this code's head still needs its migrations.
        app.state.schema_head = "9999"
        app.state.schema_revisions = frozenset({"9999", head})
        assert (await client.get("/readyz")).status_code == 503


async def test_readyz_fails_without_schema(empty_database: str) -> None:
    app = create_app(Settings(database_url=empty_database))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"


async def test_openapi_served_and_committed(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    committed = json.loads(OPENAPI_FILE.read_text())
    assert served == committed, "openapi/openapi.json is stale: run `make openapi`"


async def test_openapi_declares_problem_json_and_security(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    put = document["paths"]["/v1/subjects/{subject_id}/consent"]["put"]
    assert "application/problem+json" in put["responses"]["422"]["content"]
    # A key with the scope, the learner's own token, or an anonymous id without any token.
    assert put["security"] == [{"ApiKey": ["consent:write"]}, {"UserToken": []}, {}]
    assert "security" not in document["paths"]["/v1/policy"]["get"]
