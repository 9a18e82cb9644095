"""What the event tests share: posting batches, reading back what was stored, recording consent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.helpers import admin, choice

EVENTS = "/v1/events"
MS = timedelta(milliseconds=1)
US = timedelta(microseconds=1)
# The service's one textual form of time.
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def new_subject() -> str:
    """A fresh platform user id."""
    return f"u-{uuid.uuid4().hex[:12]}"


def now() -> datetime:
    return datetime.now(UTC)


def parse(value: str) -> datetime:
    """A timestamp the service returned."""
    return datetime.fromisoformat(value)


async def post(
    client: httpx.AsyncClient,
    events: list[Any],
    headers: dict[str, str] | None = None,
    **envelope: Any,
) -> httpx.Response:
    """POST a batch (admin key unless told otherwise)."""
    body = {"events": events, **envelope}
    return await client.post(EVENTS, json=body, headers=admin() if headers is None else headers)


async def ingest(client: httpx.AsyncClient, events: list[Any], **envelope: Any) -> dict[str, Any]:
    """POST a batch that must be taken; its result."""
    response = await post(client, events, **envelope)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    result: dict[str, Any] = response.json()
    assert len(result["results"]) == len(events)
    return result


def outcomes(result: dict[str, Any]) -> list[str]:
    """Each result as `accepted`, `duplicate` or the reason of its rejection."""
    return [r["reason"] if r["status"] == "rejected" else r["status"] for r in result["results"]]


async def stored(client: httpx.AsyncClient, subject: str, **params: Any) -> list[dict[str, Any]]:
    """Every stored event of a subject (one page of up to 1000), newest first."""
    response = await client.get(
        f"/v1/subjects/{subject}/events", params={"limit": 1000, **params}, headers=admin()
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


async def stored_ids(client: httpx.AsyncClient, subject: str) -> set[str]:
    return {item["event_id"] for item in await stored(client, subject)}


async def count_rows(app: FastAPI) -> int:
    """Rows in the events table, counted in SQL."""
    async with app.state.database.reader() as reader:
        count: int = await reader.scalar(text("SELECT count(*) FROM events"))
    return count


async def record(
    client: httpx.AsyncClient, subject: str, region: str | None = None, **categories: bool
) -> dict[str, Any]:
    """PUT a choice (unnamed optional categories refused); the state it answers."""
    body = choice(**categories)
    if region is not None:
        body["region"] = region
    response = await client.put(f"/v1/subjects/{subject}/consent", json=body, headers=admin())
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


def since(state: dict[str, Any], category: str) -> datetime:
    """When the category's value last changed, as a consent state reports it."""
    return parse(state["categories"][category]["updated_at"])
