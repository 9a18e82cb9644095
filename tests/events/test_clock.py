"""`sent_at`: a sender's clock skew is taken out of every `occurred_at` before it is judged."""

from __future__ import annotations

from datetime import timedelta, timezone

import httpx
import pytest

from tests.events.support import (
    MS,
    ingest,
    new_subject,
    now,
    outcomes,
    parse,
    record,
    since,
    stored,
)
from tests.helpers import event, rfc3339

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)
# How far apart the test's clock reading and the service's receipt of the batch may be.
SLACK = timedelta(seconds=5)


async def test_a_clock_an_hour_behind_is_corrected(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    real = now()
    theirs = real - HOUR
    sent = event(subject, occurred_at=theirs - timedelta(seconds=10))
    assert outcomes(await ingest(client, [sent], sent_at=rfc3339(theirs))) == ["accepted"]
    [item] = await stored(client, subject)
    expected = real - timedelta(seconds=10)
    assert expected <= parse(item["occurred_at"]) <= expected + SLACK


async def test_a_clock_an_hour_ahead_is_corrected_before_the_future_check(
    client: httpx.AsyncClient,
) -> None:
    subject = new_subject()
    real = now()
    theirs = real + HOUR
    occurred = rfc3339(theirs - timedelta(seconds=10))
    uncorrected = event(subject, occurred_at=occurred)
    corrected = event(subject, occurred_at=occurred)
    # Without sent_at the same time is more than five minutes ahead: invalid.
    assert outcomes(await ingest(client, [uncorrected])) == ["invalid"]
    result = await ingest(client, [corrected], sent_at=rfc3339(theirs))
    assert outcomes(result) == ["accepted"]
    [item] = await stored(client, subject)
    expected = real - timedelta(seconds=10)
    assert expected <= parse(item["occurred_at"]) <= expected + SLACK


async def test_the_offset_of_sent_at_does_not_matter(client: httpx.AsyncClient) -> None:
    """The same instant written at +05:30: the skew is an hour, not an hour and a half."""
    subject = new_subject()
    real = now()
    theirs = (real - HOUR).astimezone(timezone(timedelta(hours=5, minutes=30)))
    sent = event(subject, occurred_at=rfc3339(theirs - timedelta(seconds=10)))
    await ingest(client, [sent], sent_at=theirs.isoformat())
    [item] = await stored(client, subject)
    expected = real - timedelta(seconds=10)
    assert expected <= parse(item["occurred_at"]) <= expected + SLACK


async def test_a_correction_moving_an_event_before_the_grant_denies_it(
    client: httpx.AsyncClient,
) -> None:
    """A minute fast: an event stamped just after the grant in fact happened before it."""
    subject = new_subject()
    granted_at = since(await record(client, subject, performance=True), "performance")
    stamped = rfc3339(granted_at + MS)
    plain = event(subject, "performance", stamped)
    skewed = event(subject, "performance", stamped)
    assert outcomes(await ingest(client, [plain])) == ["accepted"]
    result = await ingest(client, [skewed], sent_at=rfc3339(now() + timedelta(minutes=1)))
    assert outcomes(result) == ["consent_denied"]
    assert [item["event_id"] for item in await stored(client, subject)] == [plain["event_id"]]


async def test_a_correction_moving_an_event_after_the_grant_accepts_it(
    client: httpx.AsyncClient,
) -> None:
    """An hour slow: an event its sender stamped an hour before the grant came after it."""
    subject = new_subject()
    granted_at = since(await record(client, subject, performance=True), "performance")
    stamped = rfc3339(granted_at + MS - HOUR)
    assert outcomes(await ingest(client, [event(subject, "performance", stamped)])) == [
        "consent_denied"
    ]
    result = await ingest(
        client, [event(subject, "performance", stamped)], sent_at=rfc3339(now() - HOUR)
    )
    assert outcomes(result) == ["accepted"]
    [item] = await stored(client, subject)
    assert parse(item["occurred_at"]) > granted_at


async def test_every_event_of_a_batch_is_shifted_by_the_same_skew(
    client: httpx.AsyncClient,
) -> None:
    subject = new_subject()
    theirs = now() - HOUR
    offsets = [timedelta(minutes=-30), timedelta(seconds=-1), timedelta(0)]
    events = [event(subject, occurred_at=theirs + offset) for offset in offsets]
    await ingest(client, events, sent_at=rfc3339(theirs))
    times = {i["event_id"]: parse(i["occurred_at"]) for i in await stored(client, subject)}
    shifted = [times[e["event_id"]] - offset for e, offset in zip(events, offsets, strict=True)]
    assert max(shifted) == min(shifted)  # one skew for the whole batch
    assert theirs + HOUR <= shifted[0] <= theirs + HOUR + SLACK
