"""Where a webhook may go: https without credentials to globally routable addresses, or a host
the operator allow-listed (`CONSENTRY_WEBHOOK_ALLOW_HOSTS`).

Names are resolved and every address is judged, at registration and again before every attempt;
the attempt then connects to an address just judged, so a name that resolves differently the
second time (DNS rebinding) cannot steer it elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
# A lookup that takes longer is treated as one that failed.
RESOLVE_TIMEOUT_SECONDS = 5.0
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class Refused(ValueError):
    """A webhook URL the rules do not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class AllowList:
    """Host names and networks whose webhooks may use http and non-public addresses."""

    names: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """The allow-list of the setting's entries (already checked by the settings)."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def covers(self, address: IPAddress) -> bool:
        """Whether an allow-listed network holds the address (or the IPv4 address it carries)."""
        carried = embedded_ipv4(address)
        return any(
            address in network or (carried is not None and carried in network)
            for network in self.networks
        )


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart: what to connect to, and what to tell the server."""

    url: str
    scheme: str
    host: str  # lower-cased, IPv6 without brackets
    port: int
    # `host[:port]` as the Host header carries it.
    authority: str
    ip_literal: IPAddress | None
    # The path and query, as the request line carries them.
    target: str


def parse(url: str) -> Target:
    """The target of a URL of the right form (http or https, a host, no credentials); Refused."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"must be at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 0x21 or ord(char) > 0x7E for char in url):
        raise Refused("must be printable ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("is not a valid URL") from None
    if parts.scheme not in ("https", "http"):
        raise Refused("must be an https URL")
    if "@" in parts.netloc:
        raise Refused("must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host or port == 0:
        raise Refused("must name a host and a valid port")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if not all(part and len(part) <= 63 for part in host.split(".")):
            raise Refused("must name a valid host") from None
    default_port = 443 if parts.scheme == "https" else 80
    shown = f"[{host}]" if isinstance(literal, ipaddress.IPv6Address) else host
    authority = shown if port in (None, default_port) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, parts.scheme, host, port or default_port, authority, literal, target)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether an address is globally routable unicast, judging an embedded IPv4 by itself."""
    carried = embedded_ipv4(address)
    if carried is not None:
        return is_public(carried)
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return False
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_private
        and not address.is_loopback
        and not address.is_link_local
        and not address.is_unspecified
    )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address a name resolves to now (empty when it does not resolve)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        return []
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        # A scope id ("fe80::1%eth0") is not part of the address judged.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def judge(target: Target, addresses: list[IPAddress], allow: AllowList) -> None:
    """Refused unless every address may be reached, and plain http only on an allowed host."""
    by_name = target.ip_literal is None and target.host in allow.names
    listed = bool(addresses) and all(allow.covers(address) for address in addresses)
    if target.scheme != "https" and not (by_name or listed):
        raise Refused("must be https (plain http only for a host in CONSENTRY_WEBHOOK_ALLOW_HOSTS)")
    if by_name:
        return
    for address in addresses:
        if not is_public(address) and not allow.covers(address):
            raise Refused(
                "resolves to an address that is not globally routable; such a host must be in "
                "CONSENTRY_WEBHOOK_ALLOW_HOSTS"
            )


async def check_registration(url: str, allow: AllowList) -> None:
    """The rules at registration: a name that does not resolve now is judged at each attempt."""
    target = parse(url)
    addresses = await _addresses_of(target)
    judge(target, addresses, allow)


async def checked_address(target: Target, allow: AllowList) -> IPAddress:
    """The address an attempt connects to, just resolved and judged; Refused otherwise."""
    addresses = await _addresses_of(target)
    if not addresses:
        raise Refused("does not resolve")
    judge(target, addresses, allow)
    return addresses[0]


async def _addresses_of(target: Target) -> list[IPAddress]:
    if target.ip_literal is not None:
        return [target.ip_literal]
    return await resolve(target.host, target.port)
