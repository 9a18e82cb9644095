"""Consent reads kept as their response body and ETag, for as long as the state they show is.

A read from the consent cache gets the same state object until a change drops it, so the body
of that state (its representation, JSON and digest: most of the read's own work) is the same
too, for the same region and GPC signal. It is kept beside the object it was made from and
used only while the cache still returns that very object: a change, or a state read anew from
the database, is a different object, whose body is made afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from consentry.consent import service
from consentry.consent.cache import ConsentCache
from consentry.consent.repository import StoredConsent
from consentry.consent.service import RequestFacts
from consentry.policy import Policy
from consentry.recent import keep_recent


class _Rendered(NamedTuple):
    stored: StoredConsent | None
    policy: Policy
    region: str | None
    gpc: bool
    body: bytes
    etag: str


class RenderedReads:
    """The last body and ETag served for each subject read from the cache, least recent out."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, _Rendered] = OrderedDict()

    async def read(
        self,
        cache: ConsentCache,
        policy: Policy,
        subject_id: str,
        facts: RequestFacts,
        read_anew: Callable[[], Awaitable[dict[str, Any]]],
    ) -> tuple[bytes, str]:
        """The body and ETag of the subject's consent now; `read_anew` reads it when not cached."""
        found, stored = cache.get(subject_id)
        if not found:
            return service.body_and_etag(await read_anew())
        kept = self._entries.get(subject_id)
        # `is`: the kept entry holds its state object, so no other object can share its identity.
        if (
            kept is not None
            and kept.stored is stored
            and kept.policy is policy
            and kept.region == facts.region
            and kept.gpc == facts.gpc
        ):
            self._entries.move_to_end(subject_id)
            return kept.body, kept.etag
        body, etag = service.body_and_etag(service.represent(policy, subject_id, stored, facts))
        rendered = _Rendered(stored, policy, facts.region, facts.gpc, body, etag)
        keep_recent(self._entries, subject_id, rendered, self._size)
        return body, etag
