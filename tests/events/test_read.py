"""A subject's stored events: who may read them, in what order, filtered and paginated."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.events.support import TIMESTAMP, ingest, new_subject, record
from tests.helpers import admin, anon_id, bearer, choice, event, make_key, rfc3339, user_token
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio

BASE = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _url(subject: str) -> str:
    return f"/v1/subjects/{subject}/events"


async def _page(
    client: httpx.AsyncClient, subject: str, **params: Any
) -> tuple[list[dict[str, Any]], str | None]:
    response = await client.get(_url(subject), params=params, headers=admin())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    return body["items"], body["next_cursor"]


async def _walk(client: httpx.AsyncClient, subject: str, **params: Any) -> list[dict[str, Any]]:
    """Every item, page after page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = await _page(
            client, subject, **params, **({"cursor": cursor} if cursor else {})
        )
        assert page, "a page that promises more must hold some"
        items += page
        if cursor is None:
            return items


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("admin", 200),
        ("privacy_key", 200),
        ("own_jwt", 200),
        ("other_jwt", 403),
        ("events_key", 403),
        ("consent_key", 403),
        ("nobody", 401),
    ],
)
async def test_who_may_read_a_subjects_events(
    app: FastAPI, client: httpx.AsyncClient, who: str, status: int
) -> None:
    subject = new_subject()
    sent = event(subject)
    await ingest(client, [sent])
    headers = {
        "admin": admin(),
        "privacy_key": bearer(await make_key(app, "privacy", "privacy:admin")),
        "own_jwt": bearer(user_token(subject)),
        "other_jwt": bearer(user_token(new_subject())),
        "events_key": bearer(await make_key(app, "ingest", "events:write")),
        "consent_key": bearer(await make_key(app, "consent", "consent:read", "consent:write")),
        "nobody": {},
    }[who]
    response = await client.get(_url(subject), headers=headers)
    if status == 200:
        assert response.status_code == 200
        assert [item["event_id"] for item in response.json()["items"]] == [sent["event_id"]]
        assert response.headers["cache-control"] == "no-store"
    else:
        assert_problem(response, status, {401: "unauthorized", 403: "forbidden"}[status])


async def test_an_anonymous_subject_needs_a_token_to_read_its_events(
    client: httpx.AsyncClient,
) -> None:
    """Its id opens its consent, not its events."""
    subject = anon_id()
    assert (await client.put(f"/v1/subjects/{subject}/consent", json=choice())).status_code == 200
    await ingest(client, [event(subject)])
    assert_problem(await client.get(_url(subject)), 401, "unauthorized")
    own = await client.get(_url(subject), headers=bearer(user_token(subject)))
    assert len(own.json()["items"]) == 1


async def test_a_subject_sees_only_its_own_events(client: httpx.AsyncClient) -> None:
    one, other = new_subject(), new_subject()
    mine = event(one)
    await ingest(client, [mine, event(other), event(other)])
    items, _ = await _page(client, one)
    assert [item["event_id"] for item in items] == [mine["event_id"]]
    assert (await _page(client, new_subject())) == ([], None)


async def test_events_are_newest_first_and_ties_by_event_id_descending(
    client: httpx.AsyncClient,
) -> None:
    subject = new_subject()
    offsets = [5, 1, 3, 3, 0, 3, 7, 1]  # minutes after BASE, sent in no order
    events = [event(subject, occurred_at=BASE + timedelta(minutes=m)) for m in offsets]
    await ingest(client, events)
    items, _ = await _page(client, subject)
    wanted = sorted(events, key=lambda e: (e["occurred_at"], e["event_id"]), reverse=True)
    assert [item["event_id"] for item in items] == [e["event_id"] for e in wanted]
    for item in items:
        assert re.fullmatch(TIMESTAMP, item["occurred_at"])
        assert re.fullmatch(TIMESTAMP, item["received_at"])


async def test_the_category_filter(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    state = await record(client, subject, performance=True, functional=True)
    later = datetime.fromisoformat(state["updated_at"]) + timedelta(milliseconds=1)
    events = [event(subject, c, later) for c in ("necessary", "performance", "functional")] * 2
    events = [{**e, "event_id": event(subject)["event_id"]} for e in events]
    await ingest(client, events)
    for category in ("necessary", "performance", "functional"):
        items, _ = await _page(client, subject, category=category)
        assert len(items) == 2
        assert {item["category"] for item in items} == {category}
    assert (await _page(client, subject, category="customization")) == ([], None)


@pytest.mark.parametrize(
    "params",
    [
        {"category": "marketing"},
        {"category": "Necessary"},
        {"since": "2026-11-28T12:00:00"},
        {"until": "yesterday"},
        {"limit": 0},
        {"limit": 1001},
        {"limit": "ten"},
    ],
)
async def test_a_bad_query_is_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get(_url(new_subject()), params=params, headers=admin())
    assert_problem(response, 422, "validation_error")


async def test_since_is_inclusive_and_until_exclusive(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    events = [event(subject, occurred_at=BASE + timedelta(minutes=m)) for m in range(6)]
    await ingest(client, events)

    async def minutes(**params: Any) -> list[int]:
        """The minute after BASE of each event listed."""
        items, _ = await _page(client, subject, **params)
        return [(datetime.fromisoformat(i["occurred_at"]) - BASE).seconds // 60 for i in items]

    def at(minute: int) -> str:
        return rfc3339(BASE + timedelta(minutes=minute))

    assert await minutes(since=at(2)) == [5, 4, 3, 2]
    assert await minutes(until=at(2)) == [1, 0]
    assert await minutes(since=at(1), until=at(4)) == [3, 2, 1]
    assert await minutes(since=at(1).replace("Z", "+00:00"), until=at(1)) == []
    # The same instants written with another offset.
    plus_two = (BASE + timedelta(minutes=2)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert await minutes(since=plus_two) == [5, 4, 3, 2]
    assert await minutes(since=rfc3339(BASE + timedelta(minutes=2, microseconds=1))) == [5, 4, 3]


async def test_pages_walk_every_event_once(client: httpx.AsyncClient) -> None:
    """25 events on 6 distinct times, so ties straddle page boundaries; 10 to a page."""
    subject = new_subject()
    events = [event(subject, occurred_at=BASE + timedelta(seconds=i % 6)) for i in range(25)]
    await ingest(client, events)
    pages = []
    cursor = None
    while True:
        page, cursor = await _page(
            client, subject, limit=10, **({"cursor": cursor} if cursor else {})
        )
        pages.append(page)
        if cursor is None:
            break
    assert [len(page) for page in pages] == [10, 10, 5]
    walked = [item["event_id"] for page in pages for item in page]
    everything, _ = await _page(client, subject)
    assert walked == [item["event_id"] for item in everything]
    assert sorted(walked) == sorted(e["event_id"] for e in events)


async def test_an_exact_last_page_has_no_cursor(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await ingest(client, [event(subject) for _ in range(4)])
    first, cursor = await _page(client, subject, limit=2)
    assert cursor is not None
    second, cursor = await _page(client, subject, limit=2, cursor=cursor)
    assert cursor is None
    assert len(first) == len(second) == 2


async def test_pages_of_a_filtered_list(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    state = await record(client, subject, performance=True)
    start = datetime.fromisoformat(state["updated_at"]) + timedelta(milliseconds=1)
    events = [
        event(subject, ("necessary", "performance")[i % 2], start + timedelta(seconds=i // 4))
        for i in range(24)
    ]
    await ingest(client, events)
    since = rfc3339(start + timedelta(seconds=1))
    walked = await _walk(client, subject, category="performance", since=since, limit=3)
    wanted = sorted(
        (e for e in events if e["category"] == "performance" and e["occurred_at"] >= since),
        key=lambda e: (e["occurred_at"], e["event_id"]),
        reverse=True,
    )
    assert [item["event_id"] for item in walked] == [e["event_id"] for e in wanted]


def _cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).rstrip(b"=").decode()


async def test_a_foreign_cursor_is_422(client: httpx.AsyncClient) -> None:
    subject = new_subject()
    await ingest(client, [event(subject) for _ in range(3)])
    # The consent history's own cursor, issued by this service for another list.
    for i in range(2):
        await record(client, subject, performance=bool(i % 2))
    history = await client.get(
        f"/v1/subjects/{subject}/consent/history", params={"limit": 1}, headers=admin()
    )
    foreign = history.json()["next_cursor"]
    assert foreign
    _, ours = await _page(client, subject, limit=1)
    assert ours
    for cursor in (
        foreign,
        "not-a-cursor",
        ours + "x",
        _cursor({"v": 1, "t": "2026-11-28T12:00:00", "id": "x"}),  # a time without offset
        _cursor({"v": 1, "t": "noon", "id": "x"}),
        _cursor({"v": 2, "t": "2026-11-28T12:00:00Z", "id": "x"}),
        _cursor({"v": 1, "t": 5, "id": "x"}),
    ):
        response = await client.get(_url(subject), params={"cursor": cursor}, headers=admin())
        assert_problem(response, 422, "validation_error")
