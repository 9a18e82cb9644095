"""The client's address, trusting `X-Forwarded-For` only from configured proxies, and truncated."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from fastapi import Request

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Addresses parsed and truncated are remembered: parsing one cost more than a write's decision,
# and the same clients (a proxy's, a campus NAT's) come back request after request.
_REMEMBERED = 4096


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """The trusted proxy networks from settings."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


# Longer text is parsed each time: an IPv6 address with a zone is shorter, and a client's
# made-up header must not fill the memory kept for addresses.
_LONGEST_REMEMBERED = 64


def _address(value: str) -> IPAddress | None:
    return _remembered(value) if len(value) <= _LONGEST_REMEMBERED else _parsed(value)


def _parsed(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_remembered = lru_cache(maxsize=_REMEMBERED)(_parsed)


def client_address(request: Request, trusted: Sequence[Network]) -> IPAddress | None:
    """The first address, walking `X-Forwarded-For` from the right, that is not a trusted proxy."""
    peer = _address(request.client.host) if request.client else None
    if peer is None or not any(peer in network for network in trusted):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None  # a garbled chain proves nothing about the client
        if not any(address in network for network in trusted):
            return address
        peer = address
    return peer


def truncate(address: IPAddress | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address: all that is ever stored."""
    if address is None:
        return None
    return _truncated(address)


@lru_cache(maxsize=_REMEMBERED)
def _truncated(address: IPAddress) -> str:
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
