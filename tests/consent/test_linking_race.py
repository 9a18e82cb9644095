"""Linking and a concurrent consent write for the same learner serialize, and ids link once.

On PostgreSQL the link takes the learner's row lock as every consent write does; on SQLite every
write transaction begins IMMEDIATE. Either way one comes wholly before the other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from consentry.auth import Caller
from consentry.consent.schemas import ConsentUpdate
from consentry.consent.service import ConsentChange, RequestFacts, record_choice
from tests.consent.linking_support import history, link, verify_chain, visitor_choice
from tests.helpers import bearer, choice, user_token

pytestmark = pytest.mark.anyio

# Long enough for a link that does not wait to have answered; it proves only that one waits.
STILL_WAITING = 0.3
ROUNDS = 8


def _learner() -> str:
    return f"learner-race-{uuid.uuid4().hex[:8]}"


async def test_a_link_waits_for_a_write_in_progress_and_then_carries_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    learner = _learner()
    visitor, _ = await visitor_choice(client, performance=True)
    update = ConsentUpdate.model_validate(choice(functional=True))
    change = ConsentChange(
        choice=update,
        categories=cast(Mapping[str, bool], update.categories),  # a TypedDict of booleans
        caller=Caller(kind="user", name="subject", subject_id=learner),
        facts=RequestFacts(region=None, gpc=False, ip=None, user_agent=None),
        if_match=None,
    )
    async with app.state.database.unit_of_work() as uow:  # commits when the block ends
        written = await record_choice(
            uow,
            app.state.policy,
            await app.state.pseudonyms.get(),
            app.state.consent_cache,
            learner,
            change,
        )
        linking = asyncio.create_task(link(client, learner, visitor))
        await asyncio.sleep(STILL_WAITING)
        # A link that read the learner without the lock would have found no choice, carried the
        # visitor's over and answered by now (or collided with this write's record).
        assert not linking.done()
    response = await linking
    assert response.status_code == 200
    # Once let through it sees the learner's own choice, which wins.
    assert response.json()["receipt_id"] == written["receipt_id"]
    records = await history(client, learner)
    assert [r.get("linked_from") for r in records] == [None]


async def test_links_and_writes_racing_keep_one_chain(client: httpx.AsyncClient) -> None:
    """Whichever commits first, the chain never forks and the state is its last record."""
    orders = set()
    for _ in range(ROUNDS):
        learner = _learner()
        visitor, receipt = await visitor_choice(client, performance=True)
        put, linked = await asyncio.gather(
            client.put(
                f"/v1/subjects/{learner}/consent",
                json=choice(functional=True),
                headers=bearer(user_token(learner)),
            ),
            link(client, learner, visitor),
        )
        assert (put.status_code, linked.status_code) == (200, 200), (put.text, linked.text)
        records = await history(client, learner)
        verify_chain(records)
        final = put.json() if put.json()["revision"] == len(records) else linked.json()
        assert final["revision"] == len(records) and final["receipt_id"] == records[0]["id"]
        shape = tuple(r.get("linked_from") for r in records)
        # Link first: its record, then the write's on top. Write first: nothing carried.
        assert shape in {(None, receipt), (None,)}
        orders.add(shape)
    assert orders  # at least one order was seen; which ones depends on the scheduler


async def test_two_learners_racing_for_one_id_one_wins(client: httpx.AsyncClient) -> None:
    for _ in range(ROUNDS):
        visitor, receipt = await visitor_choice(client, customization=True)
        learners = [_learner() for _ in range(4)]
        responses = await asyncio.gather(*(link(client, learner, visitor) for learner in learners))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409, 409, 409], [r.text for r in responses]
        carried: list[Any] = []
        for learner in learners:
            carried.extend(r.get("linked_from") for r in await history(client, learner))
        assert carried == [receipt]
