"""Request bodies read strictly: JSON only, size-limited before parsing, parsed once with orjson."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from consentry.errors import MalformedRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType

# Personal data is never kept by a shared or browser cache.
NO_STORE = {"Cache-Control": "no-store"}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DIGITS = re.compile(r"[0-9]+")


def _is_json(content_types: list[str]) -> bool:
    """Whether the body is declared, once, as application/json in UTF-8 (the only charset)."""
    # Two Content-Type fields leave the body's type ambiguous, so they are refused.
    if len(content_types) != 1:
        return False
    media_type, *params = content_types[0].split(";")
    if media_type.strip().lower() != "application/json":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it once it passes `limit` bytes, declared or streamed."""
    declared = request.headers.getlist("content-length")
    if declared:
        value = declared[0]
        # Plain ASCII digits only (str.isdigit() admits "²", which int() refuses), and copies
        # of the field that disagree make the length unknowable.
        if not _DIGITS.fullmatch(value) or any(other != value for other in declared):
            raise MalformedRequest("Content-Length is not a number.")
        # Compared by length first: int() refuses strings of more than 4300 digits.
        digits = value.lstrip("0")
        if len(digits) > len(str(limit)) or int(digits or "0") > limit:
            raise PayloadTooLarge(f"The body may hold at most {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body may hold at most {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


class JSONRoute(APIRoute):
    """A route whose JSON body is checked for media type and size, then parsed with orjson."""

    # Bytes a body may hold; None takes the service's `max_body_bytes`.
    body_limit: int | None = None
    # Whether every caller needs a token: then a request without one is refused before its
    # body is read, so an anonymous sender cannot make the service read and parse it.
    token_required = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def handle(request: Request) -> Response:
            if request.method in _BODY_METHODS:
                if self.token_required and "authorization" not in request.headers:
                    raise Unauthorized(token_sent=False)
                await _prepare_json(request, self.body_limit or request.app.state.max_body_bytes)
            return await handler(request)

        return handle


async def _prepare_json(request: Request, limit: int) -> None:
    if not _is_json(request.headers.getlist("content-type")):
        raise UnsupportedMediaType("Send the body as application/json.")
    body = await read_limited_body(request, limit)
    try:
        # orjson refuses NaN, invalid UTF-8 and nesting past 1024 levels: all are malformed here.
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("The body is not valid JSON.") from None
    # Starlette's Request.json() returns this cached value, so FastAPI never parses twice.
    request._json = parsed
    request._body = body


def json_response(
    body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialized with orjson."""
    return Response(
        orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers
    )
