"""The export's reads: every row about one subject, streamed from one read-only snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import bindparam, select

from consentry.consent.models import ConsentRecord, ConsentState
from consentry.consent.repository import RECORD_COLUMNS, STATE_COLUMNS, StoredConsent
from consentry.db import Query, Reader
from consentry.events.models import Event
from consentry.events.repository import EVENT_COLUMNS
from consentry.privacy.models import ErasureRequest
from consentry.privacy.repository import StoredErasure
from consentry.providers.models import Provider
from consentry.providers.repository import COLUMNS as PROVIDER_COLUMNS
from consentry.providers.repository import StoredProvider

# Rows fetched per round trip: memory stays flat whatever the subject holds.
_CHUNK = 1000

_STATE = Query(select(*STATE_COLUMNS).where(ConsentState.subject_id == bindparam("subject_id")))
_HISTORY = Query(
    select(*RECORD_COLUMNS)
    .where(ConsentRecord.subject_id == bindparam("subject_id"))
    .order_by(ConsentRecord.seq)
)
_EVENTS = Query(
    select(*EVENT_COLUMNS)
    .where(Event.subject_id == bindparam("subject_id"))
    .order_by(Event.occurred_at, Event.event_id)
)
_REQUESTS = Query(
    select(*ErasureRequest.__table__.columns)
    .where(ErasureRequest.subject_hash == bindparam("subject_hash"))
    .order_by(ErasureRequest.requested_at)
)
_PROVIDERS = Query(select(*PROVIDER_COLUMNS).order_by(Provider.id))


async def state(snapshot: Reader, subject_id: str) -> StoredConsent | None:
    """The subject's recorded consent, or None."""
    row = await snapshot.one_or_none(_STATE, {"subject_id": subject_id})
    return None if row is None or row["revision"] == 0 else StoredConsent(**row)


def history(snapshot: Reader, subject_id: str) -> AsyncIterator[Any]:
    """Its consent records, oldest first."""
    return snapshot.stream(_HISTORY, {"subject_id": subject_id}, chunk=_CHUNK)


def events(snapshot: Reader, subject_id: str) -> AsyncIterator[Any]:
    """Its events, oldest first."""
    return snapshot.stream(_EVENTS, {"subject_id": subject_id}, chunk=_CHUNK)


async def erasure_requests(snapshot: Reader, subject_hash: str) -> list[StoredErasure]:
    """Its erasure requests."""
    rows = await snapshot.all(_REQUESTS, {"subject_hash": subject_hash})
    return [StoredErasure(**row) for row in rows]


async def providers(snapshot: Reader) -> list[StoredProvider]:
    """Every provider."""
    return [StoredProvider(**row) for row in await snapshot.all(_PROVIDERS)]
