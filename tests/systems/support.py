"""Registering systems and running the delivery worker's step from a test."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from standardwebhooks import Webhook

from consentry.db import utcnow
from consentry.privacy import fanout
from consentry.systems.delivery import Sender, deliver_due
from consentry.systems.urls import AllowList
from consentry.systems.worker import schedule_of
from tests.helpers import admin
from tests.systems.receiver import Received

SYSTEMS = "/v1/systems"


async def register(
    client: httpx.AsyncClient,
    system_id: str,
    url: str,
    events: list[str] | None = None,
    erasure: str = "none",
) -> dict[str, Any]:
    """Register a system as the privacy team; its representation with the secret."""
    body = {
        "id": system_id,
        "name": f"System {system_id}",
        "webhook_url": url,
        "events": ["consent.changed"] if events is None else events,
        "erasure": erasure,
    }
    response = await client.post(SYSTEMS, json=body, headers=admin())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def later(seconds: float) -> Callable[[], datetime]:
    """A clock stopped `seconds` from now: the worker's step as it would run then."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return lambda: moment


async def deliver(
    app: FastAPI,
    clock: Callable[[], datetime] = utcnow,
    allow: AllowList | None = None,
    sender: Sender | None = None,
) -> int:
    """One step of the delivery worker, as the app runs it; how many deliveries it claimed.

    With a `sender`, the connections it keeps outlive the step, as they do in the worker.
    """
    own = sender is None
    sending = Sender(allow or app.state.webhook_allow) if sender is None else sender
    try:
        return await deliver_due(
            app.state.database,
            sending,
            schedule_of(app.state.settings),
            clock=clock,
            prepare=fanout.prepare_attempt,
            settle=fanout.settle_attempts,
        )
    finally:
        if own:
            await sending.aclose()


def verified(secret: str, request: Received) -> Any:
    """The body of a request whose signature the reference library accepts (else it raises)."""
    return Webhook(secret).verify(request.body, request.headers)


async def deliveries(client: httpx.AsyncClient, system_id: str, **params: str) -> list[Any]:
    """Every delivery of a system, newest first."""
    response = await client.get(f"{SYSTEMS}/{system_id}/deliveries", params=params, headers=admin())
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items
