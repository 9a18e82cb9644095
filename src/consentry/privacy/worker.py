"""The background worker: due erasures, requests whose systems are done, and a retention pass
every hour.

The worker is where the jobs' transactions begin: each step opens one unit of work and hands it
to the service that does the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from consentry.db import Database, utcnow
from consentry.errors import ServiceUnavailable
from consentry.observability.logs import describe_exception
from consentry.privacy import erasure, fanout
from consentry.privacy.retention import RetentionReport, run_retention
from consentry.pseudonyms import Pseudonyms, PseudonymSource
from consentry.settings import Settings

log = logging.getLogger(__name__)

_UNREACHABLE = (ServiceUnavailable, OSError, TimeoutError)


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
    """One pass over the due erasures, then over the requests waiting for systems; how many
    erasures ran. A database away ends the pass."""
    try:
        ran = await run_due_erasures(database, await pseudonyms.get(), clock)
        await fanout.advance(database, clock())
        return ran
    except _UNREACHABLE as exc:
        log.warning("worker pass stopped: database unavailable (%s)", type(exc).__name__)
        return 0


async def run_due_erasures(
    database: Database, pseudonyms: Pseudonyms, clock: Callable[[], datetime]
) -> int:
    """Erase every request that is due now, each in a transaction of its own; how many completed."""
    completed = 0
    while True:
        async with database.unit_of_work() as uow:
            claimed = await erasure.claim(uow, clock())
        if claimed is None:
            return completed
        request_id, attempt = claimed
        try:
            async with database.unit_of_work() as uow:
                if await erasure.erase(uow, pseudonyms, request_id, attempt, clock()):
                    completed += 1
        except Exception as exc:
            async with database.unit_of_work() as uow:
                await erasure.record_failure(uow, request_id, exc, clock())


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
