"""The subject's export (GDPR Art. 15 and 20): one JSON document, written out as rows arrive."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Any

import orjson

from consentry.audit import service as audit
from consentry.auth import Caller
from consentry.consent.service import represent
from consentry.db import Database, UnitOfWork, format_timestamp
from consentry.integrations import repository as integrations
from consentry.integrations import service as integrations_service
from consentry.policy import Policy
from consentry.privacy import erasure
from consentry.privacy import export_repository as repository
from consentry.providers import service as providers_service
from consentry.pseudonyms import Pseudonyms

_TIMES = ("recorded_at", "occurred_at", "received_at")
_PIECE_BYTES = 64 * 1024


async def record_export(
    uow: UnitOfWork, pseudonyms: Pseudonyms, caller: Caller, subject_id: str
) -> None:
    """The export's audit row (the route's unit of work commits it before the first byte)."""
    await audit.record(uow, "export", caller.name, subject_hash=pseudonyms.of(subject_id))


async def stream_export(
    database: Database,
    pseudonyms: Pseudonyms,
    policy: Policy,
    subject_id: str,
    exported_at: datetime,
) -> AsyncGenerator[bytes, None]:
    """The document, piece by piece, from one read-only snapshot; never whole in memory.

    The route reads it ahead of the client (consentry.streaming), so the snapshot ends as soon
    as the database has delivered it, or at the export's deadline.
    """
    async with database.snapshot() as snapshot:
        stored = await repository.state(snapshot, subject_id)
        consent = represent(policy, subject_id, stored, None)
        head = {
            "subject_id": subject_id,
            "exported_at": format_timestamp(exported_at),
            "policy_version": consent["policy_version"],
            "consent": consent,
        }
        yield orjson.dumps(head)[:-1]  # the object stays open for the lists that follow
        yield b',"consent_history":['
        async for chunk in _array(repository.history(snapshot, subject_id)):
            yield chunk
        yield b'],"events":['
        async for chunk in _array(repository.events(snapshot, subject_id)):
            yield chunk
        # The same rule as GET /v1/subjects/{subject_id}/providers.
        granted = set(providers_service.granted_categories(consent))
        connected = set(await integrations.flowing_provider_ids(snapshot, subject_id))
        providers = [
            providers_service.represent(p)
            for p in await repository.providers(snapshot)
            if p.category in granted or p.id in connected
        ]
        connections = [
            integrations_service.represent_connection(c.integration_id, c)
            for c in await integrations.connections_of(snapshot, subject_id)
        ]
        requests = await repository.erasure_requests(snapshot, pseudonyms.of(subject_id))
        yield b'],"providers":' + orjson.dumps(providers)
        yield b',"integrations":' + orjson.dumps(connections)
        yield b',"integration_history":['
        async for chunk in _array(integrations.records_of(snapshot, subject_id)):
            yield chunk
        yield b"]"
        yield b',"erasure_requests":' + orjson.dumps([erasure.represent(r) for r in requests])
        yield b"}"


async def _array(rows: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """JSON array items, a few hundred rows or some 64 KiB to a piece, whichever comes first."""
    pieces: list[bytes] = []
    size = 0
    first = True
    async for stored in rows:
        row = dict(stored)
        # The position in the chain, and the subject id the document already names once.
        row.pop("seq", None)
        row.pop("subject_id", None)
        # Only a record that carried an anonymous choice over names one, as in the history.
        if "linked_from" in row and row["linked_from"] is None:
            del row["linked_from"]
        for name in _TIMES:
            if isinstance(row.get(name), datetime):
                row[name] = format_timestamp(row[name])
        piece = (b"" if first else b",") + orjson.dumps(row)
        pieces.append(piece)
        size += len(piece)
        first = False
        # Bounded in bytes too: the read-ahead buffer counts whole pieces.
        if len(pieces) >= 500 or size >= _PIECE_BYTES:
            yield b"".join(pieces)
            pieces.clear()
            size = 0
    if pieces:
        yield b"".join(pieces)
