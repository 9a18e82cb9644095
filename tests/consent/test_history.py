"""The history: newest first, paginated, and a hash chain anyone can verify on their own."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from tests.helpers import admin, anon_id, choice

pytestmark = pytest.mark.anyio

# Written from the README's definition, deliberately without importing the service's code.
HASHED = (
    "id", "recorded_at", "categories", "changed", "source", "method",
    "actor", "policy_version", "region", "language", "gpc",
)  # fmt: skip


def verify_chain(newest_first: list[dict[str, Any]]) -> None:
    """Recompute every hash from the records alone and check each link."""
    prev_hash = None
    for record in reversed(newest_first):
        assert record["prev_hash"] == prev_hash
        canonical = json.dumps(
            {name: record[name] for name in HASHED},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        expected = hashlib.sha256(((prev_hash or "") + canonical).encode()).hexdigest()
        assert record["hash"] == expected
        prev_hash = record["hash"]


async def all_history(client: httpx.AsyncClient, subject: str, limit: int = 100) -> list[Any]:
    """Every record of a subject, following cursors."""
    items: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(
            f"/v1/subjects/{subject}/consent/history", params=params, headers=admin()
        )
        assert response.status_code == 200
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def _changes(client: httpx.AsyncClient, subject: str, count: int) -> None:
    for i in range(count):
        body = choice(
            performance=i % 2 == 0,
            functional=i % 3 == 0,
            region=["DE", "US-CA", "FR"][i % 3],
            language="de" if i % 2 else "en-GB",
            source=["banner", "preference_center", "api", "import"][i % 4],
        )
        response = await client.put(
            f"/v1/subjects/{subject}/consent", json=body, headers={"Sec-GPC": str(i % 2)}
        )
        assert response.status_code == 200


async def test_every_hash_recomputes(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await _changes(client, subject, 7)
    history = await all_history(client, subject)
    assert len(history) == 7
    verify_chain(history)


async def test_tampering_is_detected(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await _changes(client, subject, 3)
    history = await all_history(client, subject)
    history[1]["categories"]["performance"] = not history[1]["categories"]["performance"]
    with pytest.raises(AssertionError):
        verify_chain(history)


async def test_newest_first_and_paginated(client: httpx.AsyncClient) -> None:
    subject = anon_id()
    await _changes(client, subject, 5)
    whole = await all_history(client, subject)
    paged = await all_history(client, subject, limit=2)
    assert paged == whole
    times = [record["recorded_at"] for record in whole]
    assert times == sorted(times, reverse=True)
    first = await client.get(
        f"/v1/subjects/{subject}/consent/history", params={"limit": 5}, headers=admin()
    )
    assert first.json()["next_cursor"] is None


async def test_empty_history(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/subjects/{anon_id()}/consent/history")
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"cursor": "garbage!"},
     {"cursor": "eyJ2IjoxLCJzZXEiOiJ4In0"}, {"cursor": "eyJ2IjoyLCJzZXEiOjF9"}],
)  # fmt: skip
async def test_bad_paging_is_refused(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get(
        f"/v1/subjects/{anon_id()}/consent/history", params=params, headers=admin()
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
