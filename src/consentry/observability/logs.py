"""One log line per record, as JSON (or text in development), carrying the request's id."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

# The id of the request being handled; each request runs in a task of its own, so the value
# set by the middleware is seen by every line logged while handling it, and by no other.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record was passed in `extra` (except
# uvicorn's copy of its message with terminal colours).
_NOT_EXTRA = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra` fields."""
    return {key: value for key, value in record.__dict__.items() if key not in _NOT_EXTRA}


class JSONFormatter(logging.Formatter):
    """time (UTC, ISO 8601), level, logger, message, request_id, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := REQUEST_ID.get()) is not None:
            entry["request_id"] = request_id
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The same content as one readable line, for a developer's terminal."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record.created),
            record.levelname.lower(),
            record.name,
            f"[{REQUEST_ID.get() or '-'}]",
            record.getMessage(),
            *(f"{key}={value}" for key, value in _fields(record).items()),
        ]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def logging_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """A `logging.config.dictConfig` document: every logger, uvicorn's included, to stderr."""
    formatter = JSONFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"consentry": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "consentry",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers hand their lines to the root's handler, so they are JSON too.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # Its access lines carry raw paths, with subject ids: the middleware's line, with
            # the route template only, replaces them.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
