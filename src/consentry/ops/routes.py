"""`/healthz`, `/readyz` and `/metrics`: public, for orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from consentry.db import DatabaseDep, Query
from consentry.errors import ServiceUnavailable, problem_response, problem_responses
from consentry.observability.metrics import Metrics
from consentry.routing import NO_STORE, json_response

router = APIRouter(tags=["operations"])

_SCHEMA_REVISION = Query(text("SELECT version_num FROM alembic_version"))


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses=problem_responses(503))
async def readyz(request: Request, database: DatabaseDep) -> Response:
    """The database answers and its schema is at this code's head, or at a newer release's."""
    expected: str | None = request.app.state.schema_head
    known: frozenset[str] = request.app.state.schema_revisions
    try:
        async with database.reader() as reader:
            current = await reader.scalar(_SCHEMA_REVISION)
    except (ServiceUnavailable, SQLAlchemyError, OSError):
        return problem_response(ServiceUnavailable(), request.url.path)
    # Migrations keep the previous release working (they only add), so during a rolling
    # upgrade the old pods stay ready on the schema the new release's hook migrated to. A
    # schema this code knows but that is behind its head is a migration still to run.
    if current != expected and (current is None or current in known):
        error = ServiceUnavailable(f"The schema is at {current}, not {expected}: run migrations.")
        return problem_response(error, request.url.path)
    body = {"status": "ready", "schema": current}
    return json_response(body, headers=NO_STORE)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request, database: DatabaseDep) -> Response:
    """Requests, events, the erasure queue and the database pools, summed over the workers."""
    registry: Metrics = request.app.state.metrics
    body = await registry.render(database)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)
