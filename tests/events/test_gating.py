"""The events rule: `necessary` always passes; an optional category only under an unbroken grant.

Every subject's consent is built through the HTTP API in three recorded changes at t1 < t2 < t3,
and each event's `occurred_at` is placed around the times those changes report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.events.support import MS, US, ingest, new_subject, record, since, stored_ids
from tests.helpers import admin, event

pytestmark = pytest.mark.anyio

Times = tuple[datetime, datetime, datetime]

# Where each event of a row happens, in the column order of TABLE.
POINTS: dict[str, Callable[[Times], datetime]] = {
    "before_t1": lambda t: t[0] - MS,
    "just_before_t1": lambda t: t[0] - US,
    "at_t1": lambda t: t[0],
    "t1_to_t2": lambda t: t[0] + (t[1] - t[0]) / 2,
    "at_t2": lambda t: t[1],
    "t2_to_t3": lambda t: t[1] + (t[2] - t[1]) / 2,
    "just_before_t3": lambda t: t[2] - US,
    "at_t3": lambda t: t[2],
    "after_t3": lambda t: t[2] + MS,
}

# The three PUTs that make each state. Each changes something, so each is a recorded change
# with its own time; where performance is left alone, its grant must keep its first time.
PLANS: dict[str, list[dict[str, bool]]] = {
    "granted": [
        {"performance": True},
        {"performance": True, "functional": True},
        {"performance": True, "functional": True, "customization": True},
    ],
    "withdrawn": [
        {"performance": True},
        {"performance": False},
        {"performance": False, "functional": True},
    ],
    "regranted": [
        {"performance": True},
        {"performance": False},
        {"performance": True},
    ],
}
# A subject with no record is judged on the timeline of another subject that grants.
PLANS["no_record"] = PLANS["granted"]

A, D = "accepted", "consent_denied"
# fmt: off
TABLE = [
    # state,      category,       before just<  =t1  t1-t2  =t2  t2-t3 just<  =t3 after
    #                              t1     t1                              t3         t3
    ("no_record", "necessary",     (A,    A,    A,    A,    A,    A,    A,    A,    A)),
    ("no_record", "performance",   (D,    D,    D,    D,    D,    D,    D,    D,    D)),
    ("granted",   "necessary",     (A,    A,    A,    A,    A,    A,    A,    A,    A)),
    ("granted",   "performance",   (D,    D,    A,    A,    A,    A,    A,    A,    A)),
    ("withdrawn", "necessary",     (A,    A,    A,    A,    A,    A,    A,    A,    A)),
    ("withdrawn", "performance",   (D,    D,    D,    D,    D,    D,    D,    D,    D)),
    ("regranted", "necessary",     (A,    A,    A,    A,    A,    A,    A,    A,    A)),
    ("regranted", "performance",   (D,    D,    D,    D,    D,    D,    D,    A,    A)),
]
# fmt: on


async def _timeline(
    client: httpx.AsyncClient, subject: str, plan: list[dict[str, bool]], region: str | None
) -> Times:
    """Record the plan's three choices; the time each one reports for its change."""
    states = [await record(client, subject, region, **categories) for categories in plan]
    t1, t2, t3 = (datetime.fromisoformat(state["updated_at"]) for state in states)
    assert t1 < t2 < t3
    # The premise of the table: performance's time is that of its last change of value.
    changes = [
        i for i in range(3) if i == 0 or plan[i]["performance"] != plan[i - 1]["performance"]
    ]
    assert since(states[2], "performance") == (t1, t2, t3)[changes[-1]]
    return t1, t2, t3


@pytest.mark.parametrize(
    "region",
    [
        pytest.param("DE", id="opt_in_region"),
        # Its defaults grant every optional category, yet an event needs a recorded grant.
        pytest.param("US-CA", id="opt_out_region"),
        pytest.param(None, id="no_region"),
    ],
)
@pytest.mark.parametrize(
    ("state", "category", "expected"),
    [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in TABLE],
)
async def test_gating_truth_table(
    client: httpx.AsyncClient,
    region: str | None,
    state: str,
    category: str,
    expected: tuple[str, ...],
) -> None:
    subject = new_subject()
    timeline_subject = new_subject() if state == "no_record" else subject
    times = await _timeline(client, timeline_subject, PLANS[state], region)
    if state == "no_record":
        query = {} if region is None else {"region": region}
        shown = await client.get(f"/v1/subjects/{subject}/consent", params=query, headers=admin())
        assert shown.json()["revision"] == 0
        # What the consent GET shows for the region does not matter to events: fail closed.
        assert shown.json()["categories"]["performance"]["granted"] is (region == "US-CA")

    events = [event(subject, category, point(times)) for point in POINTS.values()]
    result = await ingest(client, events)

    wanted: list[dict[str, Any]] = [
        {"event_id": e["event_id"], "status": "accepted"}
        if outcome == A
        else {"event_id": e["event_id"], "status": "rejected", "reason": outcome}
        for e, outcome in zip(events, expected, strict=True)
    ]
    assert result["results"] == wanted
    assert result["accepted"] == expected.count(A)
    assert result["rejected"] == expected.count(D)
    assert result["duplicates"] == 0
    accepted = {e["event_id"] for e, outcome in zip(events, expected, strict=True) if outcome == A}
    assert await stored_ids(client, subject) == accepted


async def test_every_optional_category_is_gated_on_its_own(client: httpx.AsyncClient) -> None:
    """A grant of one category lets none of the others through."""
    subject = new_subject()
    state = await record(client, subject, functional=True)
    later = since(state, "functional") + MS
    events = [
        event(subject, category, later)
        for category in ("necessary", "performance", "functional", "customization")
    ]
    result = await ingest(client, events)
    assert [r.get("reason", r["status"]) for r in result["results"]] == [
        "accepted",
        "consent_denied",
        "accepted",
        "consent_denied",
    ]


async def test_a_refusal_recorded_first_denies_like_no_record(client: httpx.AsyncClient) -> None:
    """A first choice that refuses everything is a record, and it grants nothing."""
    subject = new_subject()
    state = await record(client, subject, "US-CA")
    later = since(state, "performance") + MS
    result = await ingest(client, [event(subject, "performance", later), event(subject)])
    assert [r["status"] for r in result["results"]] == ["rejected", "accepted"]
    assert result["results"][0]["reason"] == "consent_denied"


async def test_subjects_in_one_batch_are_judged_by_their_own_consent(
    client: httpx.AsyncClient,
) -> None:
    granted, refused, unknown = new_subject(), new_subject(), new_subject()
    grant = await record(client, granted, performance=True)
    await record(client, refused)
    later = since(grant, "performance") + MS
    result = await ingest(
        client, [event(subject, "performance", later) for subject in (granted, refused, unknown)]
    )
    assert [r["status"] for r in result["results"]] == ["accepted", "rejected", "rejected"]
    assert await stored_ids(client, granted) == {result["results"][0]["event_id"]}
    assert await stored_ids(client, refused) == set()


@pytest.mark.parametrize(
    "category",
    ["marketing", "Performance", "NECESSARY", "", "necessary ", "c" * 64],
)
async def test_a_category_outside_the_policy_is_unknown_category(
    client: httpx.AsyncClient, category: str
) -> None:
    """Judged before consent: even for a subject that granted everything."""
    subject = new_subject()
    state = await record(client, subject, performance=True, functional=True, customization=True)
    later = since(state, "performance") + MS
    bad = event(subject, category, later)
    result = await ingest(client, [bad, event(subject, "performance", later)])
    assert result["results"][0] == {
        "event_id": bad["event_id"],
        "status": "rejected",
        "reason": "unknown_category",
    }
    assert result["results"][1]["status"] == "accepted"
    assert len(await stored_ids(client, subject)) == 1
