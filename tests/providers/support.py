"""What the provider tests share: request bodies, and what the database holds, read in SQL."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text

from consentry.audit.models import AuditEntry
from tests.helpers import admin

PROVIDERS = "/v1/providers"
# Every field a provider answers with, and nothing else.
FIELDS = {
    "id",
    "name",
    "kind",
    "purpose",
    "data_shared",
    "category",
    "countries",
    "transfer_mechanism",
    "opt_out_url",
    "translations",
    "created_at",
    "updated_at",
}
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def body(provider_id: str = "video-cdn", **fields: Any) -> dict[str, Any]:
    """A valid provider, with `fields` replaced."""
    provider: dict[str, Any] = {
        "id": provider_id,
        "name": "Example Video Network",
        "kind": "technology",
        "purpose": "Streams lesson videos from servers near the learner.",
        "data_shared": ["ip_address", "video_requests"],
        "category": "necessary",
        "countries": ["US"],
        "transfer_mechanism": "SCC",
        "opt_out_url": None,
        "translations": {},
    }
    provider.update(fields)
    return provider


async def create(
    client: httpx.AsyncClient, provider_id: str = "video-cdn", **fields: Any
) -> dict[str, Any]:
    """POST a provider that must be created; the provider answered."""
    response = await client.post(PROVIDERS, json=body(provider_id, **fields), headers=admin())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def stored(app: FastAPI) -> dict[str, dict[str, Any]]:
    """Every row of the providers table by id, read in SQL."""
    query = text("SELECT id, name, category, updated_at FROM providers")
    async with app.state.database.reader() as reader:
        rows = await reader.all(query)
    return {row["id"]: dict(row) for row in rows}


async def audit_rows(app: FastAPI) -> list[dict[str, Any]]:
    """Every audit row about providers, oldest first, read straight from the table."""
    query = (
        select(
            AuditEntry.action,
            AuditEntry.actor,
            AuditEntry.target,
            AuditEntry.subject_hash,
            AuditEntry.details,
        )
        .where(AuditEntry.action.startswith("provider_"))
        .order_by(AuditEntry.id)
    )
    async with app.state.database.reader() as reader:
        return [dict(row) for row in await reader.all(query)]
