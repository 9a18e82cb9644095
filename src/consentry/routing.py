"""Request bodies read strictly: JSON only, size-limited before parsing, parsed once with orjson."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

import orjson
from fastapi import Request, params
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentry.apidoc import gate_access, keep_nulls
from consentry.auth import is_gate
from consentry.errors import (
    ConsentryError,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    problem_response,
)

# Personal data is never kept by a shared or browser cache.
NO_STORE = {"Cache-Control": "no-store"}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DIGITS = re.compile(r"[0-9]+")
# zlib's window for gzip members (and only those: no raw deflate, no zlib wrapper).
_GZIP_WINDOW = 16 + zlib.MAX_WBITS


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


def check_declared_length(declared: list[str], limit: int) -> None:
    """Refuse a Content-Length that is not one plain number, or that passes `limit`."""
    if not declared:
        return
    value = declared[0]
    # Plain ASCII digits only (str.isdigit() admits "²", which int() refuses), and copies
    # of the field that disagree make the length unknowable.
    if not _DIGITS.fullmatch(value) or any(other != value for other in declared):
        raise MalformedRequest("Content-Length is not a number.")
    # Compared by length first: int() refuses strings of more than 4300 digits.
    digits = value.lstrip("0")
    if len(digits) > len(str(limit)) or int(digits or "0") > limit:
        raise PayloadTooLarge(f"The body may hold at most {limit} bytes.")


async def read_limited_body(request: Request, limit: int, *, gzipped: bool = False) -> bytes:
    """The whole body, refusing it once it passes `limit` bytes, declared or streamed.

    A `gzipped` body is decompressed as it arrives, and both what was sent and what it
    decompresses to are held to `limit`.
    """
    check_declared_length(request.headers.getlist("content-length"), limit)
    inflater = _GzipInflater(limit) if gzipped else None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body may hold at most {limit} bytes.")
        chunks.append(chunk if inflater is None else inflater.feed(chunk))
    if inflater is not None:
        inflater.finish()
    return b"".join(chunks)


class _GzipInflater:
    """Decompresses gzip members piece by piece, never producing more than `limit` bytes.

    A few kilobytes of gzip can hold gigabytes: each step asks zlib for at most what is left of
    the limit (plus one byte, to notice passing it), so a bomb is refused after `limit` bytes of
    output, not after memory runs out.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._member = zlib.decompressobj(_GZIP_WINDOW)

    def feed(self, data: bytes) -> bytes:
        """The bytes `data` decompresses to (members may follow each other)."""
        pieces: list[bytes] = []
        while data:
            try:
                piece = self._member.decompress(data, self._limit - self._size + 1)
            except zlib.error:
                raise MalformedRequest("The body is not valid gzip.") from None
            self._size += len(piece)
            if self._size > self._limit:
                raise PayloadTooLarge(
                    f"The body may hold at most {self._limit} bytes once decompressed."
                )
            pieces.append(piece)
            if self._member.eof:
                data = self._member.unused_data
                if data:
                    self._member = zlib.decompressobj(_GZIP_WINDOW)
            else:
                data = self._member.unconsumed_tail
        return b"".join(pieces)

    def finish(self) -> None:
        """Refuse a body that stopped inside a gzip member."""
        if not self._member.eof:
            raise MalformedRequest("The gzip body ends early.")


def _content_coding(request: Request) -> bool:
    """Whether the body is gzip-compressed; 415 for any other coding."""
    codings = [
        coding.strip().lower()
        for value in request.headers.getlist("content-encoding")
        for coding in value.split(",")
        if coding.strip()
    ]
    if not codings or codings == ["identity"]:
        return False
    if codings in (["gzip"], ["x-gzip"]):
        return True
    raise UnsupportedMediaType("Send the body uncompressed, or compressed once with gzip.")


class JSONRoute(APIRoute):
    """A route whose JSON body is checked for media type and size, then parsed with orjson.

    Who may call it is decided first: the route's access dependency (auth.is_gate) runs before a
    byte of the body is read, so a request without a valid token, or with one that may not call
    the route, never makes the service read and parse a body.
    """

    # Bytes a body may hold; None takes the service's `max_body_bytes`.
    body_limit: int | None = None
    # Whether the parsed body is walked for its nesting depth here; a route that turns this off
    # checks the depth of what it reads itself.
    walks_depth = True
    # Whether a body may come with `Content-Encoding: gzip`; `body_limit` then bounds both the
    # bytes sent and the bytes they decompress to. Elsewhere a coding is not looked at.
    takes_gzip = False

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        # Who the route's gate admits, for the OpenAPI document; a route's own declaration wins.
        calls = (dependency.call for dependency in self.dependant.dependencies)
        self.openapi_extra = keep_nulls({**gate_access(calls), **(self.openapi_extra or {})})
        self.responses = keep_nulls(self.responses)
        body_info = None if self.body_field is None else self.body_field.field_info
        if isinstance(body_info, params.Body) and body_info.openapi_examples:
            body_info.openapi_examples = keep_nulls(body_info.openapi_examples)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler
        gates = [
            dependency.call
            for dependency in self.dependant.dependencies
            if dependency.call is not None and is_gate(dependency.call)
        ]

        async def handle(request: Request) -> Response:
            if request.method in _BODY_METHODS:
                for gate in gates:
                    await gate(request)
                await self.read_json(request)
            return await handler(request)

        return handle

    async def read_json(self, request: Request) -> None:
        """Check the body's media type and size and parse it, as this route does once its gates
        have admitted the caller: 415, 413 or 400 otherwise."""
        limit = self.body_limit or request.app.state.max_body_bytes
        await _prepare_json(
            request, limit, walks_depth=self.walks_depth, takes_gzip=self.takes_gzip
        )

    async def validated_body(self, request: Request) -> Any:
        """The body `read_json` parsed, validated as the route's body parameter.

        FastAPI's own validation, so a refusal is the RequestValidationError (and so the 422)
        the route would answer: for an endpoint that answers the route directly.
        """
        field = self.body_field
        assert field is not None
        values, errors = await request_body_to_args([field], request._json, self._embed_body_fields)
        if errors:
            raise RequestValidationError(errors, body=request._json)
        return values[field.name]


async def _prepare_json(
    request: Request, limit: int, *, walks_depth: bool, takes_gzip: bool
) -> None:
    if not _is_json(request.headers.getlist("content-type")):
        raise UnsupportedMediaType("Send the body as application/json.")
    gzipped = takes_gzip and _content_coding(request)
    body = await read_limited_body(request, limit, gzipped=gzipped)
    try:
        # orjson refuses NaN, invalid UTF-8 and nesting past 1024 levels: all are malformed here.
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("The body is not valid JSON.") from None
    depth: int = request.app.state.max_json_depth
    # Nesting needs brackets: a body with fewer than the limit cannot pass it (counted in C).
    too_deep = walks_depth and body.count(b"[") + body.count(b"{") > depth
    if too_deep and nests_deeper(parsed, depth):
        # Refused like the parser's own depth limit, only lower: a body no schema here needs.
        raise MalformedRequest(f"The body nests JSON deeper than {depth} levels.")
    # Starlette's Request.json() returns this cached value, so FastAPI never parses twice.
    request._json = parsed
    request._body = body


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests containers more than `limit` levels deep.

    Walks one level at a time and keeps only the containers of each, so the work is bounded by
    the number of values, and the parser has already bounded the depth at 1024.
    """
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        if not level:
            return False
        below: list[Any] = []
        for container in level:
            values = container.values() if type(container) is dict else container
            below.extend([v for v in values if type(v) is dict or type(v) is list])
        level = below
    return bool(level)


def json_response(
    body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialized with orjson."""
    return Response(
        orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers
    )


class BodyLimit:
    """Refuses any body past its path's limit before a route sees it, declared or streamed.

    Every route is covered, also those that read no body; JSON routes check again with the
    exact limit of their route. Pure ASGI, so a request without a body costs one header scan.
    """

    def __init__(self, app: ASGIApp, limits: Mapping[str, int]) -> None:
        self.app = app
        self._limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: list[str] = []
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared.append(value.decode("latin-1"))
        if not declared and scope["method"] in _NO_BODY_METHODS:
            # The common read: nothing declared, and a GET's body is never read.
            await self.app(scope, receive, send)
            return
        limit = self._limits.get(scope["path"]) or scope["app"].state.max_body_bytes
        try:
            check_declared_length(declared, limit)
        except ConsentryError as error:
            await problem_response(error, scope["path"])(scope, receive, send)
            return
        if declared:
            # The server delivers exactly the declared length.
            await self.app(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # Raised inside the route that reads, so the error handlers answer it.
                raise PayloadTooLarge(f"The body may hold at most {limit} bytes.")
            return message

        await self.app(scope, counted, send)


def body_limits(routes: Iterable[BaseRoute]) -> dict[str, int]:
    """The fixed paths whose JSON route allows a body other than the service's default."""
    return {
        route.path: route.body_limit
        for route in routes
        if isinstance(route, JSONRoute) and route.body_limit is not None and "{" not in route.path
    }
