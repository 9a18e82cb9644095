"""Migration 0004 loads the platform's own providers, and its downgrade takes only them back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Executable, delete, insert, inspect, select, update
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


def _columns(url: str) -> set[str]:
    """The columns the providers table has at the revision the database stands at."""

    async def run() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                found = await connection.run_sync(
                    lambda sync: inspect(sync).get_columns("providers")
                )
                return {column["name"] for column in found}
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _rows(url: str) -> dict[str, dict[str, Any]]:
    present = _columns(url)
    columns = [column for column in Provider.__table__.columns if column.name in present]
    return {row["id"]: row for row in _run(url, select(*columns))}


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
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        german = (await client.get("/v1/providers", params={"language": "de-AT"})).json()
        one = (await client.get("/v1/providers/video-cdn", params={"language": "de"})).json()
    names = {item["id"]: item["name"] for item in german["items"]}
    assert names["usage-analytics"] == "Nutzungsanalyse"
    assert one["name"] == "Video-Streaming und Auslieferungsnetz"
    assert one["translations"]["de"]["data_shared"]["ip_address"] == "IP-Adresse"


def test_the_defaults_speak_german_unless_the_privacy_team_changed_them(
    empty_database: str,
) -> None:
    migrations.upgrade(empty_database, "0006")
    renamed = datetime(2026, 12, 2, tzinfo=UTC)
    _run(
        empty_database,
        update(Provider.__table__)
        .where(Provider.__table__.c.id == "support-desk")
        .values(name="Helpdesk Inc.", updated_at=renamed),
    )
    migrations.upgrade(empty_database)
    rows = _rows(empty_database)
    for provider_id in DEFAULT_IDS - {"support-desk"}:
        german = rows[provider_id]["translations"]["de"]
        assert german["name"] and german["purpose"], provider_id
        # Every item the provider receives has its German label.
        assert set(german["data_shared"]) == set(rows[provider_id]["data_shared"]), provider_id
    assert rows["usage-analytics"]["translations"]["de"]["name"] == "Nutzungsanalyse"
    # A provider renamed to a real vendor keeps no translation of the placeholder.
    assert rows["support-desk"]["translations"] == {}
    migrations.downgrade(empty_database, "0006")
    assert "translations" not in _rows(empty_database)["video-cdn"]
