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
    sender = Sender(urls.AllowList.parse(settings.webhook_allow_hosts))
    undo = outbox.on_announce(signals.wakeup.set)
    schedule = schedule_of(settings)
    try:
        while not signals.stopping:
            signals.wakeup.clear()
            try:
                # A full batch means more may be due: go on until the outbox is drained.
                while (
                    await deliver_due(
                        database, sender, schedule, clock=clock, prepare=prepare, settle=settle
                    )
                    == BATCH
                    and not signals.stopping
                ):
                    pass
            except _UNREACHABLE as exc:
                log.warning("delivery pass stopped: database unavailable (%s)", type(exc).__name__)
            except Exception as exc:
                log.error("delivery pass failed", extra={"exception": describe_exception(exc)})
            await asyncio.sleep(_COALESCE_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.wakeup.wait(), settings.webhook_poll_seconds)
    finally:
        undo()
        await sender.aclose()
