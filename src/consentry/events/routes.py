"""HTTP endpoints of events: the batch intake, and a subject's stored events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from consentry.apidoc import WRITE_ERRORS, problem_responses
from consentry.auth import Caller, require_scope, subject_access
from consentry.consent import service as consent_service
from consentry.db import DatabaseDep
from consentry.events import service
from consentry.events.schemas import (
    MAX_BATCH_BYTES,
    EventBatch,
    EventBatchResult,
    StoredEventPage,
)
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.pseudonyms import Pseudonyms, PseudonymsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.subjects import SubjectIdPath
from consentry.timestamps import Timestamp


class EventsRoute(JSONRoute):
    """Batches may be larger than other bodies (up to 1 MiB), and only keys may send them."""

    body_limit = MAX_BATCH_BYTES
    # Each event's free-form objects are checked for depth on their own (see service.validate).
    walks_depth = False


router = APIRouter(tags=["events"], route_class=EventsRoute)

_events_writer = require_scope("events:write")
EventWriter = Annotated[Caller, Depends(_events_writer)]
EventReader = Annotated[Caller, Depends(subject_access("privacy:admin", anonymous=False))]


_EVENT = {
    "event_id": "7d9a3c1e-5b2f-4e8a-9c6d-0f1e2d3c4b5a",
    "subject_id": "u-123",
    "category": "performance",
    "name": "lesson.viewed",
    "occurred_at": "2026-12-01T09:30:00Z",
    "properties": {"course_id": "bio-101"},
    "context": {"app": "web"},
}
_BATCH = {
    "events": [
        _EVENT,
        {**_EVENT, "event_id": "1b2c3d4e-5f6a-4b7c-8d9e-0a1b2c3d4e5f", "subject_id": "u-456"},
    ]
}
_RESULT = {
    "accepted": 1,
    "duplicates": 0,
    "rejected": 1,
    "results": [
        {"event_id": _EVENT["event_id"], "status": "accepted"},
        {
            "event_id": "1b2c3d4e-5f6a-4b7c-8d9e-0a1b2c3d4e5f",
            "status": "rejected",
            "reason": "consent_denied",
        },
    ],
}
_STORED = {
    **_EVENT,
    "occurred_at": "2026-12-01T09:30:00.000000Z",
    "received_at": "2026-12-01T09:30:01.250000Z",
}


@router.post(
    "/v1/events",
    response_model=EventBatchResult,
    summary="Send tracking events",
    responses={
        200: {
            "description": "One result per event, in the order sent.",
            "content": {"application/json": {"example": _RESULT}},
        },
        **problem_responses(
            *WRITE_ERRORS,
            when={
                413: "The body passes 1 MiB.",
                422: "The envelope does not fit: no `events`, more than 1000 of them, or an "
                "unknown field beside `events` and `sent_at`. A bad event inside a valid "
                "envelope is not a 422: it gets its own result, `rejected` with reason "
                "`invalid`.",
                503: "The database cannot be reached; retry after the `Retry-After` seconds. "
                "The batch may have committed: the retry's repeats come back `duplicate`.",
            },
        ),
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"example": _BATCH}}}},
)
async def post_events(
    batch: EventBatch, request: Request, caller: EventWriter, pseudonyms: PseudonymsDep
) -> Response:
    """Keep each event its subject's consent allows; one result per event, in order.

    An event is `accepted` when its category is `necessary`, or when the subject's consent has
    granted that category without a break from `occurred_at` until now; otherwise `rejected`
    with a `reason` (`consent_denied`, `subject_erased`, `unknown_category`, or `invalid` with
    `detail`). Subjects with no record are judged by the `opt_in` defaults. Always 200 for a
    valid envelope, however many events are rejected.

    Idempotent by `event_id`: an event already stored for its subject comes back `duplicate` and
    is not stored twice, so retrying a batch after a timeout or a 503 is always safe. Send
    `sent_at` (the sender's clock) when the sender's clock may be wrong. The answer is sent only
    after the accepted events are committed.
    """
    return await _ingest(request, pseudonyms, batch)


async def _ingest(request: Request, pseudonyms: Pseudonyms, batch: EventBatch) -> Response:
    result = await service.ingest(
        request.app.state.event_writer,
        pseudonyms,
        request.app.state.event_counts,
        batch.events,
        batch.sent_at,
        max_depth=request.app.state.max_json_depth,
    )
    return json_response(result, headers=NO_STORE)


async def ingest_events(request: Request) -> Response:
    """POST /v1/events, answered directly (see shortcuts.DirectRoutes).

    Does what FastAPI does for `post_events`, in its order: the gate, then the body's type,
    size and JSON, the pseudonyms and the envelope's validation (FastAPI's own, so a 422 reads
    the same). Resolving the route's parameters and its exit stacks cost about an eighth of a
    batch's CPU time.
    """
    route: JSONRoute = request.scope["route"]
    await _events_writer(request)
    await route.read_json(request)
    pseudonyms = await pseudonyms_of(request)
    batch: EventBatch = await route.validated_body(request)
    return await _ingest(request, pseudonyms, batch)


@router.get(
    "/v1/subjects/{subject_id}/events",
    response_model=StoredEventPage,
    summary="List a subject's stored events",
    responses={
        200: {
            "description": "A page of the subject's events, newest first.",
            "content": {"application/json": {"example": {"items": [_STORED], "next_cursor": None}}},
        },
        **problem_responses(401, 403, 410, 422, 429, 503),
    },
)
async def get_events(
    subject_id: SubjectIdPath,
    request: Request,
    caller: EventReader,
    database: DatabaseDep,
    category: Annotated[
        Literal["necessary", "performance", "functional", "customization"] | None, Query()
    ] = None,
    since: Annotated[Timestamp | None, Query(description="occurred_at at or after")] = None,
    until: Annotated[Timestamp | None, Query(description="occurred_at before")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The subject's stored events, newest first, as they were time-corrected and kept.

    `category`, `since` and `until` filter; paginated: pass `next_cursor` as `?cursor=` until it
    is null (`?limit=` 1-1000, 100 by default).
    """
    pseudonyms = await pseudonyms_of(request)
    async with database.reader() as reader:
        await consent_service.ensure_live(reader, pseudonyms, subject_id)
        page = await service.read_events(
            reader,
            subject_id,
            category=category,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            cursors=pseudonyms.cursors,
        )
    return json_response(page, headers=NO_STORE)
