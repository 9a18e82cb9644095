"""Concurrent writes to one id: never a 500, never two rows, and an audit row for each change."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import admin
from tests.providers.support import PROVIDERS, audit_rows, body, stored

pytestmark = pytest.mark.anyio

RACERS = 6


async def test_concurrent_posts_create_once_and_the_rest_conflict(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    responses = await asyncio.gather(
        *(
            client.post(PROVIDERS, json=body(name=f"Racer {number}"), headers=admin())
            for number in range(RACERS)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (RACERS - 1), [r.text for r in responses]
    [winner] = [response.json() for response in responses if response.status_code == 201]
    assert (await stored(app))["video-cdn"]["name"] == winner["name"]
    assert [row["action"] for row in await audit_rows(app)] == ["provider_created"]


async def test_concurrent_puts_create_once_and_replace_after(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    responses = await asyncio.gather(
        *(
            client.put(f"{PROVIDERS}/video-cdn", json=body(name=f"Racer {n}"), headers=admin())
            for n in range(RACERS)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * (RACERS - 1) + [201], [r.text for r in responses]
    actions = [row["action"] for row in await audit_rows(app)]
    assert actions == ["provider_created"] + ["provider_changed"] * (RACERS - 1)
    # The last change audited is the state stored.
    last = (await audit_rows(app))[-1]["details"]["after"]["name"]
    assert (await stored(app))["video-cdn"]["name"] == last
