"""Replicas of the service on one database, in process, for the caches that must stay coherent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from consentry.app import create_app
from tests.conftest import make_settings


async def until(condition: Callable[[], object], seconds: float = 5.0) -> None:
    """Return once `condition()` holds, polling it (it belongs to a task the test cannot join)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@asynccontextmanager
async def replica(
    url: str, listening: Callable[[FastAPI], bool]
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """One more app on the database at `url`, and its client, once `listening(app)` holds."""
    app = create_app(make_settings(url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            await until(lambda: listening(app))
            yield app, client
