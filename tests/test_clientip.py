"""Client addresses: which forwarded hops are believed, and how addresses are truncated."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from starlette.requests import Request

from consentry import clientip
from consentry.app import create_app
from consentry.clientip import client_address, parse_networks, truncate
from tests.conftest import make_settings
from tests.helpers import admin, anon_id, choice

pytestmark = pytest.mark.anyio

TRUSTED = parse_networks(["10.0.0.0/8", "fd00::/8"])


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # untrusted peer: header ignored
        ("10.1.1.1", ["1.2.3.4"], "1.2.3.4"),
        ("10.1.1.1", ["6.6.6.6, 1.2.3.4, 10.2.2.2"], "1.2.3.4"),  # spoofed left part skipped
        ("10.1.1.1", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # repeated header lines
        ("10.1.1.1", ["10.3.3.3, 10.2.2.2"], "10.3.3.3"),  # only proxies: the farthest
        ("10.1.1.1", [], "10.1.1.1"),
        ("10.1.1.1", ["not-an-ip"], None),
        ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
        ("::ffff:10.1.1.1", ["1.2.3.4"], "1.2.3.4"),  # IPv4-mapped peer
    ],
)
def test_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded: list[str], expected: str | None
) -> None:
    found = client_address(_request(peer, *forwarded), TRUSTED)
    assert (str(found) if found else None) == expected


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:1234:5678::1", "2001:db8:abcd::/48"),
    ],
)
def test_truncation(address: str, stored: str) -> None:
    assert truncate(ipaddress.ip_address(address)) == stored


def test_mapped_address_is_truncated_as_ipv4() -> None:
    address = client_address(_request("::ffff:203.0.113.77"), TRUSTED)
    assert truncate(address) == "203.0.113.0/24"


def test_a_remembered_address_is_the_same_each_time() -> None:
    for _ in range(2):
        address = client_address(_request("10.1.1.1", "198.51.100.200, 10.2.2.2"), TRUSTED)
        assert truncate(address) == "198.51.100.0/24"


def test_a_long_made_up_hop_is_refused_and_not_remembered() -> None:
    before = clientip._remembered.cache_info().currsize
    hop = "1" * 5000
    assert client_address(_request("10.1.1.1", hop), TRUSTED) is None
    assert clientip._remembered.cache_info().currsize == before


def test_no_address() -> None:
    assert truncate(None) is None


async def test_trusted_proxy_end_to_end(database_url: str) -> None:
    app = create_app(make_settings(database_url, trusted_proxies=["198.51.100.0/24"]))
    transport = httpx.ASGITransport(app=app, client=("198.51.100.23", 443))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        subject = anon_id()
        await client.put(
            f"/v1/subjects/{subject}/consent",
            json=choice(),
            headers={"X-Forwarded-For": "2001:db8:aa:bb::7"},
        )
        history = await client.get(f"/v1/subjects/{subject}/consent/history", headers=admin())
        assert history.json()["items"][0]["ip"] == "2001:db8:aa::/48"
