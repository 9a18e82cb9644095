"""The background worker: due erasures, and a retention pass every hour."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy.exc import DBAPIError

from consentry.db import Database, utcnow
from consentry.observability.logs import describe_exception
from consentry.privacy import erasure
from consentry.privacy.retention import RetentionReport, run_retention
from consentry.pseudonyms import PseudonymSource
from consentry.settings import Settings

log = logging.getLogger(__name__)

_UNREACHABLE = (OSError, DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


RETENTION_EVERY = timedelta(hours=1)


class Signals:
    """How the process talks to its worker: wake up now, or finish the pass and stop."""

    def __init__(self) -> None:
        self.wakeup = asyncio.Event()
        self.stopping = False
        self.last_retention: datetime | None = None

    def stop(self) -> None:
        """Let the pass under way finish, then end the worker."""
        self.stopping = True
        self.wakeup.set()


async def run_worker(
    settings: Settings,
    database: Database,
    pseudonyms: PseudonymSource,
    signals: Signals,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Work until stopped: every interval, or at once when woken.

    Stopping lets a pass finish rather than cancelling it half-way through a statement, which
    could leave the database driver answering a loop that no longer runs.
    """
    while not signals.stopping:
        signals.wakeup.clear()
        try:
            await run_once(settings, database, pseudonyms, clock)
            await retain_if_due(settings, database, signals, clock)
        except Exception as exc:
            # A background loop must outlive any one pass: the next interval tries again.
            log.error("worker pass failed", extra={"exception": describe_exception(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signals.wakeup.wait(), settings.worker_interval_seconds)


async def run_once(
    settings: Settings,
    database: Database,
    pseudonyms: PseudonymSource,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """One pass over the due erasures; how many completed. A database away ends the pass."""
    try:
        return await erasure.run_due(database, await pseudonyms.get(), clock)
    except _UNREACHABLE as exc:
        log.warning("worker pass stopped: database unavailable (%s)", type(exc).__name__)
        return 0


async def retain_if_due(
    settings: Settings, database: Database, signals: Signals, clock: Callable[[], datetime]
) -> RetentionReport | None:
    """A retention pass when the last one is an hour old; concurrent passes take turns."""
    now = clock()
    if signals.last_retention is not None and now - signals.last_retention < RETENTION_EVERY:
        return None
    try:
        report = await run_retention(
            database, now=now, retention_days=settings.event_retention_days
        )
    except _UNREACHABLE as exc:
        log.warning("retention pass stopped: database unavailable (%s)", type(exc).__name__)
        return None
    signals.last_retention = now
    log.info("retention: %s", report.describe())
    return report
