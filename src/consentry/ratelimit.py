"""Per-credential rate limits: GCRA buckets in one bounded table per process."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from consentry.clientip import client_address
from consentry.errors import RateLimited
from consentry.settings import Settings

Kind = Literal["key", "user", "address"]


@dataclass(frozen=True)
class Rate:
    """A steady rate with the burst allowed on top of it."""

    per_second: float
    burst: int


class RateLimiter:
    """Generic cell rate algorithm: one integer per caller, O(1) per request.

    Each caller is remembered by the time at which its bucket would be empty again. The table
    holds at most `capacity` callers and forgets the least recently seen first, so callers that
    rotate addresses or subjects cannot grow it; a forgotten caller starts with a full burst,
    which is what it would have had after resting anyway.
    """

    def __init__(
        self,
        rates: dict[Kind, Rate],
        capacity: int,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        # Whole nanoseconds, so that a burst adds up exactly whatever the rate.
        self._rates = {
            kind: (round(1e9 / rate.per_second), round(1e9 * (rate.burst - 1) / rate.per_second))
            for kind, rate in rates.items()
        }
        self._capacity = capacity
        self._clock = clock
        self._empty_at: OrderedDict[tuple[Kind, str], int] = OrderedDict()

    def hit(self, kind: Kind, name: str, cost: int = 1) -> None:
        """Count `cost` requests of a caller at once; raises RateLimited (counting none) when
        the last of them would be over its rate."""
        interval, tolerance = self._rates[kind]
        now = self._clock()
        key = (kind, name)
        table = self._empty_at
        empty_at = table.get(key)
        if empty_at is None or empty_at < now:
            empty_at = now
        # The last of the requests is admitted at empty_at + (cost - 1) * interval.
        if empty_at + (cost - 1) * interval - now > tolerance:
            # A caller refused is still seen: hammering must not age it out of the table.
            table.move_to_end(key)
            # The wait until they all fit; whole seconds, as Retry-After takes.
            wait = empty_at + (cost - 1) * interval - tolerance - now
            raise RateLimited(
                "Too many requests from this caller; slow down.",
                headers={"Retry-After": str(max(1, -(-wait // 1_000_000_000)))},
            )
        table[key] = empty_at + cost * interval
        table.move_to_end(key)
        if len(table) > self._capacity:
            table.popitem(last=False)

    def refund(self, kind: Kind, name: str) -> None:
        """Take back one request counted by `hit`, as if it had not been made."""
        interval, _ = self._rates[kind]
        key = (kind, name)
        empty_at = self._empty_at.get(key)
        if empty_at is not None:
            # Never below now: a refund restores at most the burst the caller had.
            self._empty_at[key] = max(empty_at - interval, self._clock())

    def __len__(self) -> int:
        return len(self._empty_at)


def address_name(request: Request) -> str:
    """The client's address as a rate-limit key: IPv6 by its /64, which one host usually holds."""
    address = client_address(request, request.app.state.trusted_proxies)
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def limit(request: Request, kind: Kind, name: str, cost: int = 1) -> None:
    """Count a request (or `cost` requests' worth) against its caller's limit, if limits are on."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        limiter.hit(kind, name, cost)


def limit_address(request: Request) -> None:
    """Count a request that holds no valid credential against its client address."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        limiter.hit("address", address_name(request))


def refund_address(request: Request) -> None:
    """Take back a count of `limit_address`: the request proved a valid credential after all."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        limiter.refund("address", address_name(request))


def rate_limiter(settings: Settings) -> RateLimiter | None:
    """The limiter the settings describe, or None when limits are switched off."""
    if not settings.rate_limit_enabled:
        return None
    rates: dict[Kind, Rate] = {
        "key": Rate(settings.rate_limit_key_per_second, settings.rate_limit_key_burst),
        "user": Rate(settings.rate_limit_user_per_second, settings.rate_limit_user_burst),
        "address": Rate(settings.rate_limit_address_per_second, settings.rate_limit_address_burst),
    }
    return RateLimiter(rates, settings.rate_limit_tracked)
