"""Cached reads served as kept bodies: the same bytes as made afresh, and never a stale one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consentry.consent import service
from consentry.consent.cache import ConsentCache
from consentry.consent.rendered import RenderedReads
from consentry.consent.repository import StoredConsent
from consentry.consent.service import RequestFacts
from consentry.policy import load_policy

pytestmark = pytest.mark.anyio

POLICY = load_policy(None, [])
SUBJECT = "learner-1"


def _stored(revision: int, performance: bool) -> StoredConsent:
    now = datetime.now(UTC)
    entry = {"source": "banner", "updated_at": "2026-11-28T12:00:00.000000Z"}
    return StoredConsent(
        revision=revision,
        categories={
            "necessary": {**entry, "granted": True},
            "performance": {**entry, "granted": performance},
            "functional": {**entry, "granted": False},
            "customization": {**entry, "granted": False},
        },
        policy_version=POLICY.version,
        region=None,
        language=None,
        updated_at=now,
        receipt_id="r",
        last_hash="h",
    )


def _facts(region: str | None = None, gpc: bool = False) -> RequestFacts:
    return RequestFacts(region=region, gpc=gpc, ip=None, user_agent=None)


def _cache(stored: StoredConsent | None) -> ConsentCache:
    cache = ConsentCache(10)
    cache.listening = True
    cache.fill(SUBJECT, stored, cache.epoch)
    return cache


def _fresh(stored: StoredConsent | None, facts: RequestFacts) -> tuple[bytes, str]:
    return service.body_and_etag(service.represent(POLICY, SUBJECT, stored, facts))


async def _read(
    renders: RenderedReads, cache: ConsentCache, facts: RequestFacts
) -> tuple[bytes, str]:
    async def read_anew() -> dict[str, Any]:
        raise AssertionError("a cached subject is not read anew")

    return await renders.read(cache, POLICY, SUBJECT, facts, read_anew)


@pytest.mark.parametrize("stored", [_stored(3, True), None])
async def test_a_cached_state_is_served_as_the_bytes_it_renders_to(
    stored: StoredConsent | None,
) -> None:
    renders, cache = RenderedReads(10), _cache(stored)
    first = await _read(renders, cache, _facts())
    second = await _read(renders, cache, _facts())
    assert first == _fresh(stored, _facts())
    assert second[0] is first[0]  # kept, not made again


async def test_another_region_or_gpc_signal_gets_its_own_body() -> None:
    renders, cache = RenderedReads(10), _cache(None)
    plain = await _read(renders, cache, _facts())
    for facts in (_facts(region="DE"), _facts(gpc=True), _facts(region="US-CA", gpc=True)):
        assert await _read(renders, cache, facts) == _fresh(None, facts)
    assert await _read(renders, cache, _facts()) == plain


async def test_a_change_heard_by_the_cache_is_never_served_from_a_kept_body() -> None:
    renders, cache = RenderedReads(10), _cache(_stored(3, True))
    before = await _read(renders, cache, _facts())
    cache.forget(SUBJECT)
    changed = _stored(4, False)
    cache.fill(SUBJECT, changed, cache.epoch)
    after = await _read(renders, cache, _facts())
    assert after == _fresh(changed, _facts()) != before


async def test_nothing_is_kept_with_a_size_of_zero() -> None:
    renders, cache = RenderedReads(0), _cache(_stored(3, True))
    first = await _read(renders, cache, _facts())
    second = await _read(renders, cache, _facts())
    assert first == second and second[0] is not first[0]
