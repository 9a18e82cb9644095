"""One error hierarchy, and the handlers that turn every failure into RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from consentry.observability.logs import describe_exception

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://consentry.dev/problems/"
# Paths whose problem answers also carry `message` (see speak_plainly_on).
_MESSAGE_PATHS: set[str] = set()


class ConsentryError(Exception):
    """Base of every error the service reports to a client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or HTTPStatus(self.status).phrase
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        super().__init__(self.detail)


class MalformedRequest(ConsentryError):
    status, code = 400, "malformed_request"


class Unauthorized(ConsentryError):
    status, code = 401, "unauthorized"

    def __init__(
        self, detail: str = "A valid bearer token is required.", *, token_sent: bool = True
    ) -> None:
        # RFC 6750 §3.1: a request that sent no credentials gets the challenge without an error.
        challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(ConsentryError):
    status, code = 403, "forbidden"


class NotFound(ConsentryError):
    status, code = 404, "not_found"


class MethodNotAllowed(ConsentryError):
    status, code = 405, "method_not_allowed"


class Conflict(ConsentryError):
    status, code = 409, "conflict"


class SubjectErased(ConsentryError):
    status, code = 410, "subject_erased"


class PreconditionFailed(ConsentryError):
    status, code = 412, "precondition_failed"


class PayloadTooLarge(ConsentryError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ConsentryError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(ConsentryError):
    status, code = 422, "validation_error"


class RequiredCategory(ConsentryError):
    status, code = 422, "required_category"


class UnknownPolicyVersion(ConsentryError):
    status, code = 422, "unknown_policy_version"


class UnknownScope(ConsentryError):
    status, code = 422, "unknown_scope"


class HeadersTooLarge(ConsentryError):
    status, code = 431, "request_header_fields_too_large"


class RateLimited(ConsentryError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(ConsentryError):
    status, code = 503, "service_unavailable"

    def __init__(self, detail: str = "The database cannot be reached; try again shortly.") -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable `code`."""

    type: str = Field(description="A URI naming the kind of problem; it ends with `code`.")
    title: str = Field(description="The HTTP status phrase.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for people.")
    code: str = Field(description="A stable snake_case word to program against.")
    instance: str | None = Field(default=None, description="The path that was requested.")
    errors: list[dict[str, Any]] | None = Field(
        default=None,
        description="On 422: each problem's location (`loc`), message (`msg`) and `type`.",
    )


class MessageProblem(Problem):
    """Problem details that also carry `message`, as the analytics libraries read errors."""

    message: str = Field(description="The same as `detail`, where the libraries read it.")


def speak_plainly_on(paths: Iterable[str]) -> None:
    """Give every problem answer at these paths a `message` beside `code`, whatever its status.

    Segment's and RudderStack's libraries read `code` and `message` from an error body; without
    `message`, RudderStack's takes a 4xx for a network failure and retries it. Decided by path,
    so that answers made outside the route (the body limit, 405, 404) carry it too.
    """
    _MESSAGE_PATHS.update(paths)


def problem_response(error: ConsentryError, instance: str | None = None) -> Response:
    """Render an error as problem+json."""
    return Response(
        problem_body(error, instance),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


def problem_body(error: ConsentryError, instance: str | None = None) -> bytes:
    """The problem+json document of an error."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + error.code,
        "title": HTTPStatus(error.status).phrase,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
    }
    if instance:
        body["instance"] = instance
    if error.errors is not None:
        body["errors"] = error.errors
    if instance in _MESSAGE_PATHS:
        body["message"] = error.detail
    return orjson.dumps(body)


def validation_errors(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """Reduce pydantic's error dicts to what a client can use, echoing no input back."""
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in raw
    ]


async def _handle_consentry(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsentryError)
    return problem_response(exc, request.url.path)


async def _handle_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return problem_response(MalformedRequest("The body is not valid JSON."), request.url.path)
    error = ValidationFailed(
        "The request does not fit the schema.", errors=validation_errors(errors)
    )
    return problem_response(error, request.url.path)


_STATUS_ERRORS: dict[int, type[ConsentryError]] = {
    error.status: error
    for error in (
        MalformedRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        SubjectErased,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        RateLimited,
        ServiceUnavailable,
    )
}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path; one route alone knows only its own."""
    allowed = []
    for method in _METHODS:
        scope = {
            "type": "http",
            "path": request.scope["path"],
            "method": method,
            "root_path": request.scope.get("root_path", ""),
            "headers": [],
        }
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error_type = _STATUS_ERRORS.get(exc.status_code)
    if exc.status_code == 404:
        error: ConsentryError = NotFound("No such resource.")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed here.")
    elif error_type is None:
        # A status outside the contract's table would need a code clients do not know.
        error = ConsentryError() if exc.status_code >= 500 else MalformedRequest()
    else:
        error = error_type(exc.detail if isinstance(exc.detail, str) else None)
    error.headers.update(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        error.headers["Allow"] = ", ".join(allowed)
    return problem_response(error, request.url.path)


async def _handle_database(request: Request, exc: Exception) -> Response:
    # Connection-level failures mean the database is away, not that the request was wrong.
    log.warning("database unavailable: %s", type(exc).__name__)
    return problem_response(ServiceUnavailable(), request.url.path)


# SQLSTATE classes that say the database cannot serve now, whatever the statement: connection
# exceptions, insufficient resources (too many connections), operator intervention (restart,
# failover), and a server that refuses the configured role or database. asyncpg reports these
# on connect as a plain DBAPIError, not as an OperationalError.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "28", "3D")


async def _handle_dbapi(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if exc.connection_invalidated or (
        isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    ):
        return await _handle_database(request, exc)
    return await _handle_unexpected(request, exc)


async def _handle_driver(request: Request, exc: Exception) -> Response:
    # The seam (db.py) turns the driver's errors into ServiceUnavailable itself; this handler and
    # the ones of SQLAlchemy's errors are the net for a statement run outside it.
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.PostgresConnectionError) or (
        isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    ):
        return await _handle_database(request, exc)
    return await _handle_unexpected(request, exc)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    # The route's template, not the path: paths carry subject ids, which stay out of logs.
    route = getattr(request.scope.get("route"), "path", "an unknown route")
    # Without exc_info, so no handler can print the message: it may hold the statement's
    # values or the request's data (see describe_exception).
    log.error(
        "unhandled error on %s %s",
        request.method,
        route,
        extra={"exception": describe_exception(exc)},
    )
    return problem_response(ConsentryError("An unexpected error occurred."), request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through problem+json."""
    app.add_exception_handler(ConsentryError, _handle_consentry)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(OperationalError, _handle_database)
    app.add_exception_handler(InterfaceError, _handle_database)
    app.add_exception_handler(OSError, _handle_database)
    # No pooled connection came free in time: the database is too slow to serve now.
    app.add_exception_handler(PoolTimeout, _handle_database)
    app.add_exception_handler(DBAPIError, _handle_dbapi)
    app.add_exception_handler(asyncpg.PostgresError, _handle_driver)
    app.add_exception_handler(asyncpg.InterfaceError, _handle_driver)
    app.add_exception_handler(Exception, _handle_unexpected)
