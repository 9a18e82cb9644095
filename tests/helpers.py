"""Shared test data: credentials, tokens and request bodies."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from consentry.keys.service import create_key

ADMIN_KEY = "csk_test-admin-key-0123456789abcdefghijklmnopqrstuv"
JWT_SECRET = "test-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz"
POLICY_VERSION = "2026-11-01"
OLD_POLICY_VERSION = "2025-09-01"


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def admin() -> dict[str, str]:
    """Headers of the configured admin key."""
    return bearer(ADMIN_KEY)


def user_token(subject: str, *, secret: str = JWT_SECRET, **claims: Any) -> str:
    """An HS256 user JWT for `subject`, valid for an hour unless `claims` say otherwise."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + 3600, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def anon_id() -> str:
    """A fresh anonymous subject id."""
    return f"anon:{uuid.uuid4()}"


def choice(
    performance: bool = False,
    functional: bool = False,
    customization: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """A PUT body naming every optional category."""
    body: dict[str, Any] = {
        "categories": {
            "performance": performance,
            "functional": functional,
            "customization": customization,
        },
        "policy_version": POLICY_VERSION,
        "source": "banner",
        "method": "custom",
    }
    body.update(fields)
    return body


async def make_key(app: FastAPI, name: str, *scopes: str) -> str:
    """Create an API key in the app's database; returns the key."""
    async with app.state.database.unit_of_work() as uow:
        plaintext, _ = await create_key(uow, name, scopes)
    return plaintext


def rfc3339(moment: datetime) -> str:
    """A timestamp as the service writes them: UTC, microseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(
    subject: str,
    category: str = "necessary",
    occurred_at: datetime | str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A valid tracking event with a fresh id, happening now unless told otherwise."""
    moment = datetime.now(UTC) if occurred_at is None else occurred_at
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "subject_id": subject,
        "category": category,
        "name": "lesson.viewed",
        "occurred_at": moment if isinstance(moment, str) else rfc3339(moment),
    }
    body.update(fields)
    return body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value, 0 when it is absent (Prometheus counters start at nothing)."""
    return scrape.get((name, frozenset(labels.items())), 0.0)
