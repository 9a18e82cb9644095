"""Helpers of the linking tests: a visitor's choice, a link call, the README's verifier."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from consentry.consent.models import ConsentRecord
from tests.helpers import anon_id, bearer, choice, user_token

# Written from the README's definition, deliberately without importing the service's code.
HASHED = (
    "id", "recorded_at", "categories", "changed", "source", "method",
    "actor", "policy_version", "region", "language", "gpc",
)  # fmt: skip


def verify_chain(newest_first: list[dict[str, Any]]) -> None:
    """Recompute every hash, `linked_from` included where a record has it."""
    prev_hash = None
    for record in reversed(newest_first):
        assert record["prev_hash"] == prev_hash
        fields = {name: record[name] for name in HASHED}
        if "linked_from" in record:
            fields["linked_from"] = record["linked_from"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        expected = hashlib.sha256(((prev_hash or "") + canonical).encode()).hexdigest()
        assert record["hash"] == expected
        prev_hash = record["hash"]


async def visitor_choice(client: httpx.AsyncClient, **categories: Any) -> tuple[str, str]:
    """A visitor who answered the banner; returns its id and the receipt of its choice."""
    visitor = anon_id()
    body = choice(**categories, region="DE", language="de")
    response = await client.put(f"/v1/subjects/{visitor}/consent", json=body)
    assert response.status_code == 200, response.text
    return visitor, response.json()["receipt_id"]


async def link(client: httpx.AsyncClient, learner: str, visitor: str) -> httpx.Response:
    """The learner, signed in with its own JWT, links the visitor's id."""
    return await client.post(
        f"/v1/subjects/{learner}/consent/link",
        json={"anonymous_id": visitor},
        headers=bearer(user_token(learner)),
    )


async def history(client: httpx.AsyncClient, subject: str) -> list[dict[str, Any]]:
    """The subject's history as the subject reads it, newest first."""
    response = await client.get(
        f"/v1/subjects/{subject}/consent/history", headers=bearer(user_token(subject))
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def age_records(app: FastAPI, subject: str, by: timedelta) -> None:
    """Move every record of the subject back in time, as if it had been recorded `by` earlier."""
    async with app.state.database.unit_of_work() as uow:
        query = select(ConsentRecord.id, ConsentRecord.recorded_at).where(
            ConsentRecord.subject_id == subject
        )
        for row in await uow.all(query):
            await uow.execute(
                update(ConsentRecord)
                .where(ConsentRecord.id == row["id"])
                .values(recorded_at=row["recorded_at"] - by)
            )


async def set_source(app: FastAPI, subject: str, source: str) -> None:
    """Rewrite the source of every record of the subject (a notice comes from another release)."""
    async with app.state.database.unit_of_work() as uow:
        await uow.execute(
            update(ConsentRecord).where(ConsentRecord.subject_id == subject).values(source=source)
        )
