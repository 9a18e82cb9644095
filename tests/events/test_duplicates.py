"""Nothing is stored twice: an event is its (subject_id, event_id), in a batch and across them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.events.support import (
    MS,
    count_rows,
    ingest,
    new_subject,
    outcomes,
    post,
    record,
    since,
    stored,
    stored_ids,
)
from tests.helpers import event

pytestmark = pytest.mark.anyio


async def test_an_event_sent_twice_in_one_batch_is_stored_once(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    first = event(subject)
    again = {**first, "name": "sent.again"}
    result = await ingest(client, [first, again, event(subject)])
    assert outcomes(result) == ["accepted", "duplicate", "accepted"]
    assert result["results"][1]["event_id"] == first["event_id"]
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 1, 0)
    items = await stored(client, subject)
    assert len(items) == 2
    assert {item["name"] for item in items if item["event_id"] == first["event_id"]} == {
        "lesson.viewed"
    }


async def test_a_resent_batch_repeats_rejections_and_turns_acceptances_into_duplicates(
    client: httpx.AsyncClient,
) -> None:
    subject = new_subject()
    state = await record(client, subject, performance=True)
    later = since(state, "performance") + MS
    batch = [
        event(subject),
        event(subject, "performance", later),
        event(subject, "functional", later),
        event(subject, "marketing", later),
        event(subject, name=""),
        event(subject, "performance", since(state, "performance") - MS),
    ]
    first = await ingest(client, batch)
    assert outcomes(first) == [
        "accepted",
        "accepted",
        "consent_denied",
        "unknown_category",
        "invalid",
        "consent_denied",
    ]
    second = await ingest(client, batch)
    assert outcomes(second) == [
        "duplicate",
        "duplicate",
        "consent_denied",
        "unknown_category",
        "invalid",
        "consent_denied",
    ]
    # Rejections are answered exactly as the first time, detail included.
    assert [r for r in second["results"] if r["status"] == "rejected"] == [
        r for r in first["results"] if r["status"] == "rejected"
    ]
    assert (second["accepted"], second["duplicates"], second["rejected"]) == (0, 2, 4)
    assert await stored_ids(client, subject) == {batch[0]["event_id"], batch[1]["event_id"]}


async def test_a_duplicate_never_replaces_what_was_stored(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    original = event(subject, properties={"course_id": "bio-101"})
    await ingest(client, [original])
    before = await stored(client, subject)
    changed = {
        **original,
        "name": "something.else",
        "occurred_at": "2026-01-01T00:00:00Z",
        "properties": {"course_id": "chem-202"},
        "context": {"app": "ios"},
    }
    result = await ingest(client, [changed])
    assert outcomes(result) == ["duplicate"]
    assert await stored(client, subject) == before


async def test_an_upper_case_resend_is_a_duplicate(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    original = event(subject)
    assert outcomes(await ingest(client, [original])) == ["accepted"]
    shouted = {**original, "event_id": original["event_id"].upper()}
    result = await ingest(client, [shouted])
    assert result["results"] == [{"event_id": original["event_id"], "status": "duplicate"}]
    assert await stored_ids(client, subject) == {original["event_id"]}


async def test_an_upper_case_event_id_is_stored_and_echoed_lower_case(
    client: httpx.AsyncClient,
) -> None:
    subject = new_subject()
    event_id = str(uuid.uuid4())
    mixed = event_id[:18].upper() + event_id[18:]
    result = await ingest(
        client,
        [event(subject, event_id=mixed), event(subject, event_id=event_id.upper())],
    )
    assert result["results"] == [
        {"event_id": event_id, "status": "accepted"},
        {"event_id": event_id, "status": "duplicate"},
    ]
    assert await stored_ids(client, subject) == {event_id}
    again = await ingest(client, [event(subject, event_id=event_id)])
    assert outcomes(again) == ["duplicate"]


async def test_the_same_event_id_for_two_subjects_is_two_events(
    client: httpx.AsyncClient,
) -> None:
    one, other = new_subject(), new_subject()
    shared = event(one)
    twin = {**shared, "subject_id": other}
    result = await ingest(client, [shared, twin])
    assert outcomes(result) == ["accepted", "accepted"]
    assert await stored_ids(client, one) == {shared["event_id"]}
    assert await stored_ids(client, other) == {shared["event_id"]}
    # And each is now a duplicate of its own subject's event only.
    assert outcomes(await ingest(client, [twin, shared])) == ["duplicate", "duplicate"]


async def test_a_rejected_event_does_not_make_a_later_one_with_its_id_a_duplicate(
    client: httpx.AsyncClient,
) -> None:
    subject = new_subject()
    denied = event(subject, "performance")
    necessary = {**denied, "category": "necessary"}
    broken = event(subject, name="x" * 129)
    repaired = {**broken, "name": "lesson.viewed"}
    unknown = event(subject, "marketing")
    known = {**unknown, "category": "necessary"}
    result = await ingest(client, [denied, necessary, broken, repaired, unknown, known])
    assert outcomes(result) == [
        "consent_denied",
        "accepted",
        "invalid",
        "accepted",
        "unknown_category",
        "accepted",
    ]
    assert await stored_ids(client, subject) == {
        denied["event_id"],
        broken["event_id"],
        unknown["event_id"],
    }


async def test_a_stored_event_resent_after_withdrawal_is_rejected_not_duplicate(
    client: httpx.AsyncClient,
) -> None:
    """Consent is judged before duplicates: a resend after withdrawal reports the refusal."""
    subject = new_subject()
    state = await record(client, subject, performance=True)
    tracked = event(subject, "performance", since(state, "performance") + MS)
    assert outcomes(await ingest(client, [tracked])) == ["accepted"]
    await record(client, subject, performance=False)
    result = await ingest(client, [tracked])
    assert result["results"] == [
        {"event_id": tracked["event_id"], "status": "rejected", "reason": "consent_denied"}
    ]


def _statuses_per_event(responses: list[httpx.Response], count: int) -> list[list[str]]:
    """For each event of identical batches, its outcome in every response, sorted."""
    for response in responses:
        assert response.status_code == 200, response.text
    columns: list[list[str]] = [[] for _ in range(count)]
    for response in responses:
        for index, result in enumerate(response.json()["results"]):
            columns[index].append(result.get("reason", result["status"]))
    return [sorted(column) for column in columns]


async def _mixed_batch(client: httpx.AsyncClient, size: int) -> tuple[list[Any], list[bool]]:
    """Events of several subjects, some allowed and some refused by consent; which are allowed."""
    subjects = [new_subject() for _ in range(6)]
    grants = [await record(client, s, performance=True) for s in subjects[:3]]
    later = max(since(state, "performance") for state in grants) + MS
    events = []
    allowed = []
    for i in range(size):
        subject = subjects[i % len(subjects)]
        category = "necessary" if i % 3 == 0 else "performance"
        events.append(event(subject, category, later))
        allowed.append(category == "necessary" or i % len(subjects) < 3)
    return events, allowed


@pytest.mark.parametrize("copies", [2, 4])
async def test_concurrent_identical_batches_store_each_event_once(
    app: FastAPI, client: httpx.AsyncClient, copies: int
) -> None:
    """The same batch sent at once by several senders: one acceptance per event in all."""
    rows = 0
    for _ in range(4):
        events, allowed = await _mixed_batch(client, 60)
        responses = await asyncio.gather(*(post(client, events) for _ in range(copies)))
        for column, ok in zip(
            _statuses_per_event(list(responses), len(events)), allowed, strict=True
        ):
            if ok:
                assert column == ["accepted"] + ["duplicate"] * (copies - 1)
            else:
                assert column == ["consent_denied"] * copies
        rows += sum(allowed)
        assert await count_rows(app) == rows


async def test_concurrent_overlapping_batches_store_each_event_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Batches that share events with their neighbours, sent at once, in different orders."""
    subjects = [new_subject() for _ in range(5)]
    events = [event(subjects[i % 5], event_id=str(uuid.uuid4())) for i in range(150)]
    # Batch k holds events [30k, 30k + 60): each shares half of itself with each neighbour.
    batches = [events[30 * k : 30 * k + 60] for k in range(4)]
    batches[1].reverse()
    batches[3].reverse()
    responses = await asyncio.gather(*(post(client, batch) for batch in batches))
    accepted: list[str] = []
    duplicates: list[str] = []
    for batch, response in zip(batches, responses, strict=True):
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["event_id"] for r in results] == [e["event_id"] for e in batch]
        accepted += [r["event_id"] for r in results if r["status"] == "accepted"]
        duplicates += [r["event_id"] for r in results if r["status"] == "duplicate"]
    sent = {e["event_id"] for batch in batches for e in batch}
    assert sorted(accepted) == sorted(sent)
    assert len(duplicates) == sum(len(b) for b in batches) - len(sent)
    assert await count_rows(app) == len(sent)
