"""HTTP endpoints of events: the batch intake, and a subject's stored events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from consentry.auth import Caller, require_scope, subject_access
from consentry.consent import service as consent_service
from consentry.db import DatabaseDep, UnitOfWorkDep
from consentry.errors import problem_responses
from consentry.events import service
from consentry.events.schemas import (
    MAX_BATCH_BYTES,
    EventBatch,
    EventBatchResult,
    StoredEventPage,
)
from consentry.pagination import DEFAULT_LIMIT, Cursor, Limit
from consentry.pseudonyms import PseudonymsDep, pseudonyms_of
from consentry.routing import NO_STORE, JSONRoute, json_response
from consentry.subjects import SubjectIdPath
from consentry.timestamps import Timestamp


class EventsRoute(JSONRoute):
    """Batches may be larger than other bodies (up to 1 MiB), and only keys may send them."""

    body_limit = MAX_BATCH_BYTES
    # Each event's free-form objects are checked for depth on their own (see service.validate).
    walks_depth = False


router = APIRouter(tags=["events"], route_class=EventsRoute)

EventWriter = Annotated[Caller, Depends(require_scope("events:write"))]
EventReader = Annotated[Caller, Depends(subject_access("privacy:admin", anonymous=False))]


@router.post(
    "/v1/events",
    response_model=EventBatchResult,
    responses=problem_responses(400, 401, 403, 413, 415, 422, 429, 503),
)
async def post_events(
    batch: EventBatch,
    request: Request,
    caller: EventWriter,
    pseudonyms: PseudonymsDep,
    uow: UnitOfWorkDep,
) -> Response:
    """Keep each event its subject's consent allows; one result per event, in order.

    The answer is sent only after the accepted events are committed.
    """
    result = await service.ingest(
        uow,
        pseudonyms,
        request.app.state.event_counts,
        batch.events,
        batch.sent_at,
        max_depth=request.app.state.max_json_depth,
    )
    return json_response(result, headers=NO_STORE)


@router.get(
    "/v1/subjects/{subject_id}/events",
    response_model=StoredEventPage,
    responses=problem_responses(401, 403, 410, 422, 429, 503),
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
    """The subject's stored events, newest first."""
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
