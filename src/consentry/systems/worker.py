"""The delivery worker: sends due messages until stopped, woken at once by a commit that
stored one, and otherwise every `CONSENTRY_WEBHOOK_POLL_SECONDS`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from consentry.db import Database, utcnow
from consentry.errors import ServiceUnavailable
from consentry.observability.logs import describe_exception
from consentry.settings import Settings
from consentry.systems import outbox, urls
from consentry.systems.delivery import BATCH, SCHEDULE, Preparer, Sender, Settler, deliver_due

log = logging.getLogger(__name__)

_UNREACHABLE = (ServiceUnavailable, OSError, TimeoutError)
# Batches claimed and sent at once: while one lane waits on its slowest receiver or records its
# outcomes, the others send (the claim skips what another lane holds). One lane left the worker
# idle for more than half of a backlog's drain.
_LANES = 4
# Wakes closer together than this share one look at the outbox.
_COALESCE_SECONDS = 0.02


class DeliverySignals:
    """How the process talks to its delivery worker: wake up now, or finish and stop."""

    def __init__(self) -> None:
        self.wakeup = asyncio.Event()
        self.stopping = False

    def stop(self) -> None:
        """Let the attempts under way finish, then end the worker."""
        self.stopping = True
        self.wakeup.set()


def _log_failure(failure: BaseException) -> None:
    """Log why a pass stopped; the next one tries again. Cancellation is not a failure."""
    if not isinstance(failure, Exception):
        raise failure
    if isinstance(failure, _UNREACHABLE):
        log.warning("delivery pass stopped: database unavailable (%s)", type(failure).__name__)
    else:
        log.error("delivery pass failed", extra={"exception": describe_exception(failure)})


def schedule_of(settings: Settings) -> tuple[float, ...]:
    """The retry delays in force: `CONSENTRY_WEBHOOK_RETRY_SCHEDULE`, else the contract's."""
    return settings.retry_delays or SCHEDULE


async def run_deliveries(
    settings: Settings,
    database: Database,
    signals: DeliverySignals,
    *,
    prepare: Preparer | None = None,
    settle: Settler | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Deliver until stopped; a pass that fails is logged and the next one tries again."""
    sender = Sender(urls.AllowList.parse(settings.webhook_allow_hosts), keep=_LANES * BATCH)
    undo = outbox.on_announce(signals.wakeup.set)
    schedule = schedule_of(settings)

    async def lane() -> None:
        # A full batch means more may be due: go on until the outbox is drained.
        while (
            await deliver_due(
                database, sender, schedule, clock=clock, prepare=prepare, settle=settle
            )
            == BATCH
            and not signals.stopping
        ):
            pass

    try:
        while not signals.stopping:
            signals.wakeup.clear()
            # Every lane ends before the next pass: a failing one never leaves others behind.
            ended = await asyncio.gather(*(lane() for _ in range(_LANES)), return_exceptions=True)
            failures = [result for result in ended if result is not None]
            if failures:
                _log_failure(failures[0])  # the lanes of one pass fail for the same reason
            sender.close_idle()
            await asyncio.sleep(_COALESCE_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.wakeup.wait(), settings.webhook_poll_seconds)
    finally:
        undo()
        await sender.aclose()
