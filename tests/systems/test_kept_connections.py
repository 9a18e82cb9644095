"""A connection to a receiver is kept for the next attempt to the same name at the address just
checked, and only after an exchange that ended cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from consentry.systems import delivery, urls
from consentry.systems.connections import KeptLinks, Link, Route
from consentry.systems.delivery import Sender
from tests.helpers import admin, choice
from tests.replicas import until
from tests.systems.receiver import Receiver, Reply
from tests.systems.support import SYSTEMS, deliver, deliveries, later, register, verified

pytestmark = pytest.mark.anyio

LOOPBACK = urls.AllowList.parse(["127.0.0.0/8"])


async def _change(client: httpx.AsyncClient, subject: str, performance: bool) -> None:
    response = await client.put(
        f"/v1/subjects/{subject}/consent", json=choice(performance=performance), headers=admin()
    )
    assert response.status_code == 200, response.text


@pytest.fixture
async def sender(app: FastAPI) -> AsyncIterator[Sender]:
    kept = Sender(app.state.webhook_allow)
    try:
        yield kept
    finally:
        await kept.aclose()


async def test_attempts_one_after_another_go_on_one_connection(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, sender: Sender
) -> None:
    system = await register(client, "recs", f"{receiver.url}/recs")
    for number, performance in enumerate((True, False, True)):
        await _change(client, "learner-kept", performance)
        assert await deliver(app, sender=sender) == 1, number
    assert receiver.connections == 1
    bodies = [verified(system["secret"], request) for request in receiver.received]
    assert [body["data"]["categories"]["performance"] for body in bodies] == [True, False, True]
    assert {item["status"] for item in await deliveries(client, "recs")} == {"delivered"}


async def test_an_answer_that_asks_to_close_is_not_kept(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, sender: Sender
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [Reply(204, headers={"Connection": "close"})]
    for performance in (True, False):
        await _change(client, "learner-closes", performance)
        assert await deliver(app, sender=sender) == 1
    assert receiver.connections == 2
    assert {item["status"] for item in await deliveries(client, "recs")} == {"delivered"}


async def test_a_kept_connection_hung_up_on_is_replaced_and_the_attempt_sent_on_a_new_one(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, sender: Sender
) -> None:
    """A receiver may close an idle connection just as the next request goes out on it."""
    await register(client, "recs", f"{receiver.url}/recs")
    await _change(client, "learner-hung-up", True)
    assert await deliver(app, sender=sender) == 1
    receiver.replies = [Reply(hang_up=True)]
    await _change(client, "learner-hung-up", False)
    assert await deliver(app, sender=sender) == 1
    _, dropped, resent = receiver.received
    assert dropped.headers["webhook-id"] == resent.headers["webhook-id"]
    assert dropped.body == resent.body
    assert receiver.connections == 2
    assert [item["status"] for item in await deliveries(client, "recs")] == ["delivered"] * 2


async def test_a_new_connection_hung_up_on_is_an_attempt_that_failed(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, sender: Sender
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [Reply(hang_up=True)]
    await _change(client, "learner-new-hang-up", True)
    assert await deliver(app, sender=sender) == 1
    [item] = await deliveries(client, "recs")
    assert (item["status"], item["last_status"], item["last_error"]) == (
        "failed",
        "refused",
        "connection_lost",
    )
    assert len(receiver.received) == 1


async def test_an_answer_whose_body_is_still_coming_is_not_kept(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, sender: Sender
) -> None:
    await register(client, "recs", f"{receiver.url}/recs")
    receiver.replies = [Reply(200, body=b"x" * (8 * 1024 * 1024))]
    await _change(client, "learner-long-answer", True)
    assert await deliver(app, sender=sender) == 1
    # Closed at once: the receiver could not write the rest of its answer.
    await until(lambda: receiver.cut_short == 1)
    await _change(client, "learner-long-answer", False)
    assert await deliver(app, sender=sender) == 1
    assert receiver.connections == 2
    assert [item["status"] for item in await deliveries(client, "recs")] == ["delivered"] * 2


async def test_an_attempt_that_timed_out_leaves_no_connection_behind(
    app: FastAPI,
    client: httpx.AsyncClient,
    receiver: Receiver,
    sender: Sender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", 0.3)
    await register(client, "recs", f"{receiver.url}/recs")
    await _change(client, "learner-slow", True)
    assert await deliver(app, sender=sender) == 1
    receiver.replies = [Reply(204, delay=1.0)]
    await _change(client, "learner-slow", False)
    assert await deliver(app, sender=sender) == 1
    assert (await deliveries(client, "recs"))[0]["last_status"] == "timeout"
    # Its retry does not read the late answer of the attempt that timed out.
    assert await deliver(app, later(10), sender=sender) == 1
    assert (await deliveries(client, "recs"))[0]["status"] == "delivered"
    assert receiver.connections == 2


async def test_a_kept_connection_serves_only_its_name_at_the_address_just_checked(
    app: FastAPI,
    client: httpx.AsyncClient,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolved = {"hooks.platform.test": "127.0.0.1", "other.platform.test": "127.0.0.1"}

    async def resolve(host: str, port: int) -> list[urls.IPAddress]:
        return [urls.ipaddress.ip_address(resolved[host])]

    monkeypatch.setattr(urls, "resolve", resolve)
    sender = Sender(LOOPBACK)
    try:
        await register(client, "recs", f"http://hooks.platform.test:{receiver.port}/recs")
        await _change(client, "learner-names", True)
        assert await deliver(app, sender=sender) == 1
        assert receiver.connections == 1

        # Another name at the same address: a connection of its own.
        response = await client.delete(f"{SYSTEMS}/recs", headers=admin())
        assert response.status_code == 204, response.text
        await register(client, "other", f"http://other.platform.test:{receiver.port}/other")
        await _change(client, "learner-names", False)
        assert await deliver(app, sender=sender) == 1
        assert receiver.connections == 2
        [request] = receiver.received[1:]
        assert request.headers["host"] == f"other.platform.test:{receiver.port}"

        # The name now resolves elsewhere, where nothing listens: the connection kept for the
        # address it had is not used.
        resolved["other.platform.test"] = "127.0.0.2"
        await _change(client, "learner-names", True)
        assert await deliver(app, sender=sender) == 1
        item = (await deliveries(client, "other"))[0]
        assert (item["status"], item["last_error"]) == ("failed", "connect_failed")
        assert len(receiver.received) == 2
    finally:
        await sender.aclose()


# ---- the kept connections themselves ----


class _Peer:
    """A local server that answers nothing, and the links opened to it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened: list[Link] = []
        # The server's end of each link, by the port of the link's own end.
        self.ends: dict[int, asyncio.StreamWriter] = {}

    async def open(self) -> Link:
        """A real connection to the server, as a link."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        link = Link(reader, writer)
        self.opened.append(link)
        return link

    async def hang_up(self, link: Link) -> None:
        """Close the server's end of `link`, and wait until its end of stream has arrived."""
        port = link.writer.get_extra_info("sockname")[1]
        await until(lambda: port in self.ends)
        self.ends[port].close()
        await until(link.reader.at_eof)


@asynccontextmanager
async def _peer() -> AsyncIterator[_Peer]:
    """A `_Peer` until the block ends; every connection closed then."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.ends[writer.get_extra_info("peername")[1]] = writer
        await reader.read()  # until the client closes

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    peer = _Peer(server.sockets[0].getsockname()[1])
    try:
        yield peer
    finally:
        for link in peer.opened:
            link.close()
        for writer in peer.ends.values():
            writer.close()
        server.close()
        await server.wait_closed()


def _route(host: str = "hooks.platform.test", address: str = "127.0.0.1") -> Route:
    return ("https", host, 443, urls.ipaddress.ip_address(address))


async def test_a_kept_link_is_taken_by_its_route_only() -> None:
    async with _peer() as peer:
        link = await peer.open()
        kept = KeptLinks(most=4)
        kept.keep(_route(), link, now=100.0)
        assert kept.take(_route("other.platform.test"), now=100.0) is None
        assert kept.take(_route(address="127.0.0.2"), now=100.0) is None
        assert kept.take(_route(), now=100.0) is link
        assert link.reused
        assert kept.take(_route(), now=100.0) is None
        assert len(kept) == 0


async def test_a_link_idle_too_long_or_closed_by_the_receiver_is_closed_not_taken() -> None:
    async with _peer() as peer:
        kept = KeptLinks(most=4, idle=4.0)
        stale, fresh = await peer.open(), await peer.open()
        kept.keep(_route(), stale, now=100.0)
        kept.keep(_route(), fresh, now=103.0)
        assert kept.take(_route(), now=104.5) is fresh
        assert kept.take(_route(), now=104.5) is None
        assert stale.writer.is_closing()

        hung_up = await peer.open()
        kept.keep(_route(), hung_up, now=200.0)
        await peer.hang_up(hung_up)
        assert kept.take(_route(), now=200.0) is None
        assert hung_up.writer.is_closing()


async def test_at_most_so_many_links_are_kept_and_idle_routes_are_swept() -> None:
    async with _peer() as peer:
        kept = KeptLinks(most=2, idle=4.0)
        first, second, third = [await peer.open() for _ in range(3)]
        kept.keep(_route("a.test"), first, now=100.0)
        kept.keep(_route("b.test"), second, now=100.0)
        kept.keep(_route("c.test"), third, now=100.0)
        assert len(kept) == 2
        assert third.writer.is_closing()
        # A route no attempt goes to any more is swept once its links have been idle too long.
        late = await peer.open()
        kept.keep(_route("c.test"), late, now=105.0)
        assert first.writer.is_closing() and second.writer.is_closing()
        assert len(kept) == 1
        kept.close()
        assert late.writer.is_closing()
        assert len(kept) == 0
