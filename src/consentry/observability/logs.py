"""One log line per record, as JSON (or text in development), carrying the request's id."""

from __future__ import annotations

import logging
import time
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from itertools import islice
from types import TracebackType
from typing import Any, Literal

import orjson

from consentry.observability.writer import BatchedStreamHandler

# The id of the request being handled; each request runs in a task of its own, so the value
# set by the middleware is seen by every line logged while handling it, and by no other.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

LogFormat = Literal["json", "text"]

# A record's own attributes come first in its __dict__, then those of `extra` (added after
# it is made), then what formatters cache on it; uvicorn's coloured copy is not a field.
_OWN_ATTRIBUTES = len(logging.makeLogRecord({}).__dict__)
_NOT_EXTRA = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}

# No log line names a thread or a multiprocessing process: records skip looking them up, a
# few microseconds that the access line of every request would pay.
logging.logThreads = False
logging.logMultiprocessing = False

# The last second formatted: a busy process logs many lines in the same second.
_second: tuple[int, str] = (-1, "")


def timestamp(created: float) -> str:
    """`created` in UTC, ISO 8601 with milliseconds and `Z`."""
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int((created - whole) * 1000):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra` fields."""
    attributes = islice(record.__dict__.items(), _OWN_ATTRIBUTES, None)
    return {key: value for key, value in attributes if key not in _NOT_EXTRA}


class InfoRecords:
    """INFO records of one logger, copied from one made in advance: for a line every request logs.

    A record made by Logger.info walks the stack for its caller and looks up the source file's
    name, the thread and the process each time: most of the cost of a line, and none of it
    appears in one. The copy holds the same attributes, so every handler and formatter works.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        template = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "", (), None)
        self._template = template.__dict__
        self._relative_base = template.created - template.relativeCreated / 1000

    def log(self, message: str, fields: dict[str, Any]) -> None:
        """Log `message` with `fields`, as `logger.info(message, extra=fields)` would."""
        now = time.time()
        attributes = self._template.copy()
        attributes["msg"] = message
        attributes["created"] = now
        attributes["msecs"] = (now - int(now)) * 1000
        attributes["relativeCreated"] = (now - self._relative_base) * 1000
        attributes.update(fields)
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__ = attributes
        self.logger.handle(record)


def describe_exception(exc: BaseException) -> str:
    """An exception's chain: each class, its SQLSTATE and where it was raised, never a message.

    Messages hold data: SQLAlchemy's carry the statement's bound parameters, PostgreSQL's name
    the values they refuse ("Key (subject_id)=(...) already exists"), and any exception may
    quote its input. The classes and the stack say where to look without repeating any of it.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    parts = []
    for link in reversed(chain):
        frames = "".join(traceback.format_list(traceback.extract_tb(link.__traceback__)))
        kind = type(link)
        sqlstate = getattr(link, "sqlstate", None)
        state = f" (SQLSTATE {sqlstate})" if isinstance(sqlstate, str) else ""
        parts.append(
            f"Traceback (most recent call last):\n{frames}{kind.__module__}.{kind.__qualname__}"
            f"{state} [message withheld]"
        )
    return "\n\nThe above led to:\n\n".join(parts)


class _WithheldMessages(logging.Formatter):
    """Exceptions logged by anyone (uvicorn, SQLAlchemy's pool, a library) appear without text."""

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        exc = ei[1]
        return describe_exception(exc) if exc is not None else ""


class JSONFormatter(_WithheldMessages):
    """time (UTC, ISO 8601), level, logger, message, request_id, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": timestamp(record.created),
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


class TextFormatter(_WithheldMessages):
    """The same content as one readable line, for a developer's terminal."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            timestamp(record.created),
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


def logging_config(level: str, log_format: LogFormat, *, access_log: bool) -> dict[str, Any]:
    """A `logging.config.dictConfig` document: every logger, uvicorn's included, to stderr.

    Lines are written in batches, off the caller's thread, at most a few milliseconds late
    (consentry.observability.writer); whatever is waiting is written when the process exits.
    """
    formatter = JSONFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"consentry": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": f"{BatchedStreamHandler.__module__}.{BatchedStreamHandler.__qualname__}",
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
            # The service's own line per request (consentry.observability.middleware), handed
            # to the handler directly: see consentry.observability.access.
            "consentry.access": {
                "level": "NOTSET" if access_log else "WARNING",
                "handlers": ["stderr"],
                "propagate": False,
            },
        },
    }
