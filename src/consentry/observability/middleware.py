"""One pure ASGI middleware: the request id, the request metrics and the access line."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentry.observability.access import AccessLines
from consentry.observability.logs import REQUEST_ID
from consentry.observability.metrics import METHODS, Metrics

access_log = logging.getLogger("consentry.access")

REQUEST_ID_HEADER = b"x-request-id"
# An incoming id is kept only when it cannot smuggle anything into a log line or a header.
_SAFE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# The route label of requests no route matched: their paths are unbounded and personal.
UNMATCHED = "unmatched"
# Request ids are cut from one read of the system's randomness this many at a time: a read per
# request is a system call per request.
_IDS_PER_READ = 256
_ID_DIGITS = 32


def _random_ids() -> Iterator[str]:
    """An endless supply of ids of 32 random hex digits."""
    while True:
        digits = secrets.token_hex(_IDS_PER_READ * _ID_DIGITS // 2)
        for start in range(0, len(digits), _ID_DIGITS):
            yield digits[start : start + _ID_DIGITS]


def _incoming_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _SAFE_ID.fullmatch(value) else None
    return None


class ObservabilityMiddleware:
    """Gives each HTTP request an id (returned as `X-Request-ID`), counts it and logs it once.

    It wraps the whole stack, Starlette's error middleware included, so that a 500 answer
    carries the id too and every line logged while handling the request names it.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.access_lines = AccessLines(access_log)
        self._fresh_ids = _random_ids()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_id(scope["headers"]) or next(self._fresh_ids)
        REQUEST_ID.set(request_id)
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: a response's header list may be shared between answers.
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route: Any = scope.get("route")
            template = route.path if route is not None else UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.observe_request(method, template, status, seconds)
            self.access_lines.log(request_id, method, template, status, seconds)
