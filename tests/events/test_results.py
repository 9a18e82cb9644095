"""One result per event, in the order sent; counts that add up; the process's counters agree."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.events.support import MS, ingest, new_subject, outcomes, post, record, since
from tests.helpers import event

pytestmark = pytest.mark.anyio


async def _mixed(client: httpx.AsyncClient) -> tuple[list[Any], list[str]]:
    """A batch with every kind of outcome, interleaved, and the outcome each event must have."""
    granted, refused = new_subject(), new_subject()
    state = await record(client, granted, performance=True)
    await record(client, refused)
    later = since(state, "performance") + MS
    stored_before = event(granted)
    assert outcomes(await ingest(client, [stored_before])) == ["accepted"]
    necessary, tracked = event(granted), event(granted, "performance", later)
    denied_then_allowed = event(granted, "functional", later)
    cases: list[tuple[Any, str]] = [
        (event(refused, "performance", later), "consent_denied"),
        (necessary, "accepted"),
        (event(granted, "ads", later), "unknown_category"),
        (stored_before, "duplicate"),
        (tracked, "accepted"),
        ({"event_id": "nope"}, "invalid"),
        (necessary, "duplicate"),
        (event(new_subject(), "customization", later), "consent_denied"),
        (denied_then_allowed, "consent_denied"),
        (event(refused), "accepted"),
        ({**tracked, "event_id": tracked["event_id"].upper()}, "duplicate"),
        ({**denied_then_allowed, "category": "necessary"}, "accepted"),
        (event(granted, name=""), "invalid"),
        (None, "invalid"),
    ]
    return [e for e, _ in cases], [outcome for _, outcome in cases]


async def test_results_come_in_the_order_sent_with_counts_that_add_up(
    client: httpx.AsyncClient,
) -> None:
    events, expected = await _mixed(client)
    result = await ingest(client, events)
    assert outcomes(result) == expected
    # Each id as sent, in its canonical lower case; none for an event that is not an object.
    assert [r["event_id"] for r in result["results"]] == [
        e["event_id"].lower() if isinstance(e, dict) else None for e in events
    ]
    counts = Counter(r["status"] for r in result["results"])
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (4, 3, 7)
    assert counts == {"accepted": 4, "duplicate": 3, "rejected": 7}
    assert result["accepted"] + result["duplicates"] + result["rejected"] == len(events)
    for r in result["results"]:
        assert ("reason" in r) is (r["status"] == "rejected")
        assert ("detail" in r) is (r.get("reason") == "invalid")


async def test_the_counters_add_up_every_judged_event(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    counts = app.state.event_counts
    assert counts.snapshot() == {}
    tally: Counter[tuple[str, str]] = Counter()
    for _ in range(2):
        events, _ = await _mixed(client)  # its own first batch is judged and counted too
        tally[("accepted", "")] += 1
        result = await ingest(client, events)
        tally.update((r["status"], r.get("reason", "")) for r in result["results"])
    # A refused envelope judges nothing.
    assert (await post(client, [event(new_subject())] * 1001)).status_code == 422
    assert (await post(client, [])).status_code == 422
    assert counts.snapshot() == dict(tally)
    assert counts.snapshot()[("rejected", "consent_denied")] == 6
    assert counts.snapshot()[("accepted", "")] == 2 * 5
