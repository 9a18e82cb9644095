"""Waiting, in bounded time, for something outside the test process to happen."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    """Poll `condition` until it holds; fail, naming `what`, if it does not within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            # Another process (the server, PostgreSQL) changes the state: there is no event to
            # wait on, only the state to look at again.
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"never happened within {seconds} s: {what}")
