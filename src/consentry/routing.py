"""Request bodies read strictly: JSON only, size-limited before parsing, parsed once with orjson."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from consentry.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_MAX_BODY_BYTES = 64 * 1024


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    return charset in ("", "utf-8")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it once it passes `limit` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Content-Length is not a number.")
        if int(declared) > limit:
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

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def handle(request: Request) -> Response:
            if request.method in _BODY_METHODS:
                await _prepare_json(request)
            return await handler(request)

        return handle


async def _prepare_json(request: Request) -> None:
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType("Send the body as application/json.")
    limit = getattr(request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
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
