"""`/healthz`, `/readyz` and `/metrics`: public, for orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from consentry.apidoc import problem_responses
from consentry.db import DatabaseDep, Query
from consentry.errors import ServiceUnavailable, problem_response
from consentry.observability.metrics import Metrics
from consentry.routing import NO_STORE, json_response

router = APIRouter(tags=["operations"])

_SCHEMA_REVISION = Query(text("SELECT version_num FROM alembic_version"))
_METRICS_EXAMPLE = (
    "# HELP consentry_events_total Events judged, by status and, for rejected ones, reason.\n"
    "# TYPE consentry_events_total counter\n"
    'consentry_events_total{reason="",status="accepted"} 1520.0\n'
)


@router.get(
    "/healthz",
    summary="Liveness",
    responses={
        200: {
            "description": "The process is up.",
            "content": {"application/json": {"example": {"status": "ok"}}},
        }
    },
)
async def healthz() -> dict[str, str]:
    """The process is up and serving; it touches no database. For a liveness probe."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    responses={
        200: {
            "description": "Ready to serve.",
            "content": {"application/json": {"example": {"status": "ready", "schema": "0013"}}},
        },
        **problem_responses(
            503,
            when={
                503: "The database cannot be reached, or its schema is behind this release's "
                "(run `consentry migrate`)."
            },
        ),
    },
)
async def readyz(request: Request, database: DatabaseDep) -> Response:
    """The database answers and its schema is at this code's head, or at a newer release's.

    For a readiness probe: a replica answering 503 gets no traffic until it is ready.
    """
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
    responses={
        200: {
            "content": {"text/plain": {"example": _METRICS_EXAMPLE}},
            "description": "Prometheus text format",
        }
    },
)
async def metrics(request: Request, database: DatabaseDep) -> Response:
    """Requests, events, the erasure queue, the database pools and the event batches pending,
    summed over the workers.

    Public, like the health checks: keep it off the public ingress if the numbers are private.
    """
    registry: Metrics = request.app.state.metrics
    body = await registry.render(database, request.app.state.event_writer)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)
