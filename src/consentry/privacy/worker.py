"""The background worker: due erasures, requests whose systems are done, and a retention pass
every hour.

The worker is where the jobs' transactions begin: each step opens one unit of work and hands it
to the service that does the step. Erasures are claimed many at once and erased in groups whose
subjects share an erasure lock, several groups at a time: under load the worker does per group
what it did per request, and keeps no more writers out, for no longer, than one erasure did.
A request due at once wakes it, in whichever process it was made (PostgreSQL's LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from consentry.db import Database, utcnow
from consentry.errors import ServiceUnavailable
from consentry.listening import keep_listening
from consentry.observability.logs import describe_exception
from consentry.privacy import erasure, fanout, repository
from consentry.privacy.repository import StoredErasure
from consentry.privacy.retention import RetentionReport, run_retention
from consentry.pseudonyms import Pseudonyms, PseudonymSource
from consentry.settings import Settings

log = logging.getLogger(__name__)

_UNREACHABLE = (ServiceUnavailable, OSError, TimeoutError)


RETENTION_EVERY = timedelta(hours=1)
# Requests one claim takes; what a pass finds beyond them, the next claim takes.
CLAIM = 64
# Requests erased in one transaction: about what one erasure's statements cost, once.
GROUP = 8
# Transactions erasing at once (on different erasure locks), each on a pooled connection.
PARALLEL = 4
LISTENER_NAME = "consentry-erasure-listener"
# Wakes closer together than this share one pass: under load, one claim takes what they made.
_COALESCE_SECONDS = 0.02


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
    listener = (
        asyncio.create_task(listen_for_due(database, signals))
        if database.announces_changes
        else None
    )
    try:
        while not signals.stopping:
            signals.wakeup.clear()
            try:
                await run_once(settings, database, pseudonyms, clock)
                await retain_if_due(settings, database, signals, clock)
            except Exception as exc:
                # A background loop must outlive any one pass: the next interval tries again.
                log.error("worker pass failed", extra={"exception": describe_exception(exc)})
            await asyncio.sleep(_COALESCE_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.wakeup.wait(), settings.worker_interval_seconds)
    finally:
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


async def listen_for_due(database: Database, signals: Signals) -> None:
    """Wake the worker whenever a request due at once commits, in any process; reconnect when
    the connection is lost. Until it listens, the worker's interval still finds every request."""
    await keep_listening(
        lambda: database.listener(LISTENER_NAME),
        [repository.DUE_CHANNEL],
        lambda _request_id, _sender: signals.wakeup.set(),
        # Whatever was made before listening began, the pass this starts finds.
        listening=signals.wakeup.set,
        lost=lambda: None,
        off="worker not woken by new erasures",
    )


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
    """Erase every request that is due now, claimed many at a time; how many ran."""
    ran = 0
    turns = asyncio.Semaphore(PARALLEL)

    async def erase(group: Sequence[StoredErasure]) -> int:
        async with turns:
            return await _erase_group(database, pseudonyms, group, clock)

    while True:
        async with database.unit_of_work() as uow:
            claimed = await erasure.claim(uow, clock(), CLAIM)
        if not claimed:
            return ran
        groups = erasure.by_bucket(claimed, GROUP)
        # Every group runs to its end, whatever another's fate: none is left half-way.
        results = await asyncio.gather(*(erase(group) for group in groups), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            ran += result


async def _erase_group(
    database: Database,
    pseudonyms: Pseudonyms,
    group: Sequence[StoredErasure],
    clock: Callable[[], datetime],
) -> int:
    """Erase a group in one transaction; when it fails, each request alone, so that one
    subject's failure holds back no other. How many ran."""
    try:
        async with database.unit_of_work() as uow:
            return await erasure.erase(uow, pseudonyms, group, clock())
    except Exception as exc:
        if len(group) > 1:
            return sum([await _erase_group(database, pseudonyms, [one], clock) for one in group])
        async with database.unit_of_work() as uow:
            await erasure.record_failure(uow, group[0].id, exc, clock())
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
