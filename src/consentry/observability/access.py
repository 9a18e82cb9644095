"""The access line of each request, built as finished text when the service's own log takes it.

Every request logs one line, so its cost is paid by every request: a log record, a pass through
the logger's handlers and a formatter's dict turned into JSON cost about as much as a consent
read from memory. Under `consentry serve`'s configuration the line goes to one batched handler
alone, and is written here directly as the formatter would write it: the parts that depend on
the method, route and status are serialised once, the rest is placed around them. Under any
other configuration (a test's handler, a library's) the line is a record like any other.
"""

from __future__ import annotations

import logging
import time

import orjson

from consentry.observability.logs import InfoRecords, JSONFormatter, TextFormatter, timestamp
from consentry.observability.writer import BatchedStreamHandler

MESSAGE = "request"
# The formats whose lines are built here; a subclass may format differently.
_FORMATS: frozenset[type[logging.Formatter]] = frozenset({JSONFormatter, TextFormatter})


class AccessLines:
    """Writes one line per request to `logger`, at INFO, with the request's id."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._records = InfoRecords(logger)
        self._json_head = (
            f'"level":"info","logger":{orjson.dumps(logger.name).decode()},'
            f'"message":"{MESSAGE}","request_id":"'
        )
        self._text_head = f" info {logger.name} ["
        # (method, route, status, format) -> the line's serialised middle; few of each exist.
        self._middles: dict[tuple[str, str, int, type[logging.Formatter]], str] = {}

    def log(self, request_id: str, method: str, route: str, status: int, seconds: float) -> None:
        """Log one answered request; `request_id` holds only characters safe in JSON and text."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        duration = round(seconds * 1000, 3)
        handler = _sole_handler(logger)
        kind = type(handler.formatter) if handler is not None else None
        if handler is None or kind is None or kind not in _FORMATS:
            fields = {"method": method, "route": route, "status": status, "duration_ms": duration}
            self._records.log(MESSAGE, fields)
            return
        key = (method, route, status, kind)
        middle = self._middles.get(key)
        if middle is None:
            middle = self._middles[key] = _middle(method, route, status, kind)
        when = timestamp(time.time())
        if kind is JSONFormatter:
            handler.put(f'{{"time":"{when}",{self._json_head}{request_id}"{middle}{duration!r}}}\n')
        else:
            handler.put(f"{when}{self._text_head}{request_id}] {MESSAGE}{middle}{duration!r}\n")


def _sole_handler(logger: logging.Logger) -> BatchedStreamHandler | None:
    """The batched handler that alone takes `logger`'s INFO lines, unfiltered, if there is one."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters:
        return None
    handler = handlers[0]
    if type(handler) is not BatchedStreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def _middle(method: str, route: str, status: int, kind: type[logging.Formatter]) -> str:
    """The fields of an access line between its request id and its duration."""
    if kind is JSONFormatter:
        method_json, route_json = orjson.dumps(method).decode(), orjson.dumps(route).decode()
        return f',"method":{method_json},"route":{route_json},"status":{status},"duration_ms":'
    return f" method={method} route={route} status={status} duration_ms="
