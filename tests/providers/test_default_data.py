"""Migration 0004 loads the platform's own providers, and its downgrade takes only them back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Executable, delete, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from consentry import migrations
from consentry.app import create_app
from consentry.providers.models import Provider
from consentry.providers.schemas import ProviderCreate
from tests.conftest import make_settings
from tests.helpers import anon_id

DEFAULT_IDS = {
    "cloud-hosting",
    "video-cdn",
    "usage-analytics",
    "payment-processing",
    "support-desk",
}
KINDS = {"technology", "analytics", "payment", "support"}


def _run(url: str, statement: Executable) -> list[dict[str, Any]]:
    """Run one statement in its own transaction; the rows it returns, if any."""

    async def run() -> list[dict[str, Any]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(statement)
                return [dict(row._mapping) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _rows(url: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in _run(url, select(Provider.__table__))}


def test_the_defaults_are_loaded_and_valid(empty_database: str) -> None:
    migrations.upgrade(empty_database)
    rows = _rows(empty_database)

    assert set(rows) == DEFAULT_IDS
    # Each one is a provider the API itself would accept.
    for row in rows.values():
        ProviderCreate.model_validate({key: row[key] for key in ProviderCreate.model_fields})
    assert {row["kind"] for row in rows.values()} == KINDS
    assert rows["usage-analytics"]["category"] == "performance"
    assert rows["video-cdn"]["kind"] == rows["cloud-hosting"]["kind"] == "technology"
    for row in rows.values():
        assert row["transfer_mechanism"] is not None
        assert row["created_at"].isoformat() == "2026-11-29T00:00:00+00:00"
        assert row["updated_at"] == row["created_at"]


def test_downgrade_removes_only_the_defaults(empty_database: str) -> None:
    migrations.upgrade(empty_database)
    added = datetime(2026, 12, 1, tzinfo=UTC)
    own = {
        "id": "own-tool",
        "name": "Own tool",
        "kind": "support",
        "purpose": "Added by the privacy team.",
        "data_shared": ["email_address"],
        "category": "necessary",
        "countries": ["DE"],
        "created_at": added,
        "updated_at": added,
    }
    _run(empty_database, insert(Provider).values(own))
    migrations.downgrade(empty_database, "0003")
    assert set(_rows(empty_database)) == {"own-tool"}
    _run(empty_database, delete(Provider))
    migrations.upgrade(empty_database)
    assert set(_rows(empty_database)) == DEFAULT_IDS


@pytest.mark.anyio
async def test_the_api_lists_the_defaults(empty_database: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_database)
    app = create_app(make_settings(empty_database))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        page = (await client.get("/v1/providers")).json()
        subject = (await client.get(f"/v1/subjects/{anon_id()}/providers")).json()
    assert [item["id"] for item in page["items"]] == sorted(DEFAULT_IDS)
    assert page["items"][0]["created_at"] == "2026-11-29T00:00:00.000000Z"
    # Under the opt_in defaults, analytics is the one default provider kept out.
    assert {item["id"] for item in subject["items"]} == DEFAULT_IDS - {"usage-analytics"}
