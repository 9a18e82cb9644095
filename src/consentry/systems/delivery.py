"""Sending what the outbox holds: claim due deliveries, sign, POST, and record each outcome.

A claim commits before anything is sent: it counts the attempt and leases the delivery for
longer than an attempt can take, so no other worker sends it meanwhile, and a worker that dies
mid-attempt leaves it to whichever worker looks once the lease has run out (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import certifi
import orjson

from consentry import __version__
from consentry.db import Database, UnitOfWork, utcnow
from consentry.systems import http1, repository, signing, urls
from consentry.systems.connections import KeptLinks, Link, Route
from consentry.systems.repository import Claim, Outcome
from consentry.systems.service import signing_secrets

log = logging.getLogger(__name__)

# The contract's retry delays (seconds) after the 1st, 2nd, ... failed attempt; then exhausted.
SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
JITTER = 0.1
TIMEOUT_SECONDS = 15.0
MAX_ANSWER_BYTES = 64 * 1024
RETRY_AFTER_CAP_SECONDS = 24 * 3600.0
# Longer than an attempt can take (the timeout, a lookup, recording), so a lease never runs out
# under a worker that is alive.
LEASE = timedelta(seconds=60)
# Deliveries one claim takes; they are sent at once, each within the timeout.
BATCH = 64
_USER_AGENT = f"Consentry-Webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt came to: an HTTP status, or `timeout` / `refused` and why."""

    status: str
    code: int | None = None
    error: str | None = None
    retry_after: float | None = None


@dataclass
class Prepared:
    """A claim with what the claim's transaction added to its request (a confirm token, say)."""

    claim: Claim
    headers: dict[str, str] = field(default_factory=dict)


# Called inside the claim's transaction for each claimed delivery, before it commits: what it
# returns is added to the attempt's headers (the erasure's confirm tokens are issued so).
Preparer = Callable[[UnitOfWork, Claim], Awaitable[dict[str, str]]]
# Called inside the transaction that records the outcomes, with each claim and its outcome: a
# domain that waits on deliveries (an erasure on its `notify` systems) settles in the same one.
Settler = Callable[[UnitOfWork, Sequence[tuple[Claim, Outcome]]], Awaitable[None]]


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date), capped at 24 h."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def outcome(
    claim: Claim,
    answer: Answer,
    now: datetime,
    schedule: Sequence[float],
    rng: Callable[[float, float], float] = random.uniform,
) -> Outcome:
    """Where a delivery stands after an attempt: delivered, failed until a retry, or exhausted."""
    common: dict[str, Any] = {
        "message_id": claim.message_id,
        "system_id": claim.system_id,
        "attempt": claim.attempt,
        "last_status": answer.status,
        "last_error": answer.error,
        "attempted_at": now,
    }
    if answer.code is not None and 200 <= answer.code < 300:
        return Outcome(
            **common, status="delivered", streak=0, next_attempt_at=None, delivered_at=now
        )
    streak = claim.streak + 1
    if streak > len(schedule):
        return Outcome(
            **common, status="exhausted", streak=streak, next_attempt_at=None, delivered_at=None
        )
    if answer.code in (429, 503) and answer.retry_after is not None:
        delay = answer.retry_after
    else:
        delay = schedule[streak - 1] * rng(1 - JITTER, 1 + JITTER)
    return Outcome(
        **common,
        status="failed",
        streak=streak,
        next_attempt_at=now + timedelta(seconds=delay),
        delivered_at=None,
    )


def _tls_context() -> ssl.SSLContext:
    """The system's trusted CAs (and SSL_CERT_FILE) and certifi's; names are always verified."""
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context


class Sender:
    """Sends attempts, each on a connection to the address just judged for it.

    HTTP/1.1 is spoken over the event loop's own streams (http1.py): the connection goes to the
    checked address, TLS sends and verifies the host's name, and nothing (no proxy from the
    environment, no redirect) can send the request anywhere else. A connection is kept for the
    next attempt to the same name at the same address (connections.py). Only the answer's head
    is waited for, within 64 KiB.
    """

    def __init__(self, allow: urls.AllowList, keep: int = BATCH) -> None:
        """`keep`: the most connections kept over every route, as many as the attempts a caller
        has under way at once (a claim's, by default), so that all are kept for the next."""
        self.allow = allow
        self._tls = _tls_context()
        self._kept = KeptLinks(keep)

    async def send(self, prepared: Prepared, now: datetime) -> Answer:
        """One signed attempt, within the timeout; never raises for what the receiver does."""
        claim = prepared.claim
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                return await self._send(prepared, now)
        except urls.Refused as refused:
            log.info("webhook to %s refused: %s", claim.system_id, refused)
            return Answer("refused", error="url_not_allowed")
        except TimeoutError:
            return Answer("timeout")
        except ssl.SSLError:
            return Answer("refused", error="tls_failed")
        except _Unconnected:
            return Answer("refused", error="connect_failed")
        except http1.Unsendable as unsendable:
            log.warning("webhook to %s not sent: %s", claim.system_id, unsendable)
            return Answer("refused", error="url_not_allowed")
        except (OSError, http1.Malformed, _AnswerTooLarge):
            return Answer("refused", error="connection_lost")

    async def _send(self, prepared: Prepared, now: datetime) -> Answer:
        claim = prepared.claim
        assert claim.body is not None
        target = _parsed(claim.webhook_url)
        address = await urls.checked_address(target, self.allow)
        body = orjson.dumps(claim.body)
        secrets = signing_secrets(
            claim.secret, claim.previous_secret, claim.previous_secret_until, now
        )
        headers = {
            "host": target.authority,
            "user-agent": _USER_AGENT,
            "content-type": "application/json",
            "content-length": str(len(body)),
            **signing.headers(secrets, claim.message_id, int(time.time()), body),
            **prepared.headers,
        }
        route = (target.scheme, target.host, target.port, address)
        link = self._kept.take(route, time.monotonic())
        if link is not None:
            try:
                return await self._exchange_on(route, link, target.target, headers, body)
            except _Unanswered:
                pass  # the receiver closed it while it was idle: the request goes on a new one
        link = await self._connect(target, address)
        return await self._exchange_on(route, link, target.target, headers, body)

    async def _connect(self, target: urls.Target, address: urls.IPAddress) -> Link:
        tls = target.scheme == "https"
        try:
            reader, writer = await asyncio.open_connection(
                str(address),
                target.port,
                ssl=self._tls if tls else None,
                # SNI, and the name the certificate is verified against.
                server_hostname=target.host if tls else None,
            )
        except ssl.SSLError:
            raise
        except OSError as error:
            raise _Unconnected from error
        return Link(reader, writer)

    async def _exchange_on(
        self, route: Route, link: Link, path: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        """The exchange on `link`; the link is kept if it ended cleanly, and closed otherwise."""
        try:
            answer, reusable = await _exchange(link, path, headers, body)
        except BaseException:
            await _close(link)
            raise
        if reusable:
            self._kept.keep(route, link, time.monotonic())
        else:
            await _close(link)
        return answer

    def close_idle(self) -> None:
        """Close the connections kept longer than they may be (now and then, not each call)."""
        self._kept.sweep(time.monotonic())

    async def aclose(self) -> None:
        """Close the connections kept for later attempts."""
        self._kept.close()


class _Unconnected(Exception):
    """No connection to the address could be made."""


class _AnswerTooLarge(Exception):
    """The answer's head did not fit in what is read of an answer."""


class _Unanswered(ConnectionResetError):
    """A kept connection ended before a byte of the answer: the receiver had closed it idle."""


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> urls.Target:
    # A system's URL is the same on each of its attempts; taking it apart is not.
    return urls.parse(url)


async def _close(link: Link) -> None:
    link.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            await link.writer.wait_closed()


async def _exchange(
    link: Link, path: str, headers: dict[str, str], body: bytes
) -> tuple[Answer, bool]:
    """POST and read the answer's status line and headers; whether the connection can be kept.

    The answer's body is never waited for: the connection is kept only if the whole answer is
    here with its head (an empty or small body, as receivers send).
    """
    response = http1.Response()
    read = 0
    try:
        link.writer.write(http1.request(path, headers.items(), body))
        await link.writer.drain()
        while response.status is None:
            if read >= MAX_ANSWER_BYTES:
                raise _AnswerTooLarge
            chunk = await link.reader.read(MAX_ANSWER_BYTES - read)
            if not chunk:
                raise ConnectionResetError("closed before answering")
            read += len(chunk)
            response.feed(chunk)
    except OSError as error:
        if link.reused and read == 0:
            raise _Unanswered from error
        raise
    retry = None if response.retry_after is None else retry_after(response.retry_after, time.time())
    status = response.status
    return Answer(str(status), code=status, retry_after=retry), response.reusable


async def deliver_due(
    database: Database,
    sender: Sender,
    schedule: Sequence[float],
    *,
    clock: Callable[[], datetime] = utcnow,
    limit: int = BATCH,
    prepare: Preparer | None = None,
    settle: Settler | None = None,
) -> int:
    """Claim up to `limit` due deliveries, send them at once, record each; how many were claimed."""
    async with database.unit_of_work() as uow:
        now = clock()
        claims = await repository.claim_due(uow, now, limit, now + LEASE)
        prepared = []
        for claim in claims:
            extra = await prepare(uow, claim) if prepare is not None else {}
            prepared.append(Prepared(claim, extra))
    if not claims:
        return 0
    results: list[tuple[Claim, Outcome]] = []
    sendable = [p for p in prepared if p.claim.body is not None]
    answers = await asyncio.gather(*(sender.send(p, clock()) for p in sendable))
    now = clock()
    gone: set[str] = set()
    for item, answer in zip(sendable, answers, strict=True):
        results.append((item.claim, outcome(item.claim, answer, now, schedule)))
        if answer.code == 410:
            gone.add(item.claim.system_id)
    for item in prepared:
        if item.claim.body is None:
            # Its subject was erased as it was claimed: nothing is left to send.
            erased = Answer("refused", error="subject_erased")
            results.append((item.claim, outcome(item.claim, erased, now, ())))
    async with database.unit_of_work() as uow:
        await repository.record_outcomes(uow, [result for _, result in results])
        for system_id in sorted(gone):
            await repository.disable(uow, system_id, now)
        if settle is not None:
            await settle(uow, results)
    for system_id in sorted(gone):
        log.warning("system %s answered 410 Gone: its deliveries wait for its next PUT", system_id)
    return len(claims)
