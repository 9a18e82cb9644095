"""Sending what the outbox holds: claim due deliveries, sign, POST, and record each outcome.

A claim commits before anything is sent: it counts the attempt and leases the delivery for
longer than an attempt can take, so no other worker sends it meanwhile, and a worker that dies
mid-attempt leaves it to whichever worker looks once the lease has run out (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
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
import h11
import orjson

from consentry import __version__
from consentry.db import Database, UnitOfWork, utcnow
from consentry.systems import repository, signing, urls
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
    """Sends attempts, each on a connection of its own to the address just judged.

    HTTP/1.1 is spoken with h11 over the event loop's own streams: the connection goes to the
    checked address, TLS sends and verifies the host's name, and nothing (no proxy from the
    environment, no redirect, no pooled connection opened for another name) can send the
    request anywhere else. Only the answer's head is read, within 64 KiB.
    """

    def __init__(self, allow: urls.AllowList) -> None:
        self.allow = allow
        self._tls = _tls_context()

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
        except (OSError, h11.ProtocolError, _AnswerTooLarge):
            return Answer("refused", error="connection_lost")

    async def _send(self, prepared: Prepared, now: datetime) -> Answer:
        claim = prepared.claim
        assert claim.body is not None
        target = urls.parse(claim.webhook_url)
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
            "connection": "close",
            **signing.headers(secrets, claim.message_id, int(time.time()), body),
            **prepared.headers,
        }
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
        try:
            return await _exchange(reader, writer, target.target, headers, body)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    async def aclose(self) -> None:
        """Nothing stays open between attempts; kept so callers need not know."""


class _Unconnected(Exception):
    """No connection to the address could be made."""


class _AnswerTooLarge(Exception):
    """The answer's head did not fit in what is read of an answer."""


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    path: str,
    headers: dict[str, str],
    body: bytes,
) -> Answer:
    """POST and read the answer's status line and headers; its body is never read."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_ANSWER_BYTES)
    request = h11.Request(method="POST", target=path, headers=list(headers.items()))
    # One write: the head, the body and the end apart were three system calls and three TCP
    # segments for the receiver to read.
    parts = (request, h11.Data(data=body), h11.EndOfMessage())
    writer.write(b"".join(connection.send(part) or b"" for part in parts))
    await writer.drain()
    read = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            if read >= MAX_ANSWER_BYTES:
                raise _AnswerTooLarge
            chunk = await reader.read(MAX_ANSWER_BYTES - read)
            read += len(chunk)
            connection.receive_data(chunk)  # b"" is the end of the stream
            continue
        if isinstance(event, h11.Response):
            retry = None
            for name, value in event.headers:
                if name == b"retry-after":
                    retry = retry_after(value.decode("latin-1"), time.time())
            return Answer(str(event.status_code), code=event.status_code, retry_after=retry)
        if isinstance(event, h11.ConnectionClosed):
            raise ConnectionResetError("closed before answering")
        # An informational answer (100 Continue) comes before the real one.


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
