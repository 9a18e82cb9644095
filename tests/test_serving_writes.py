"""Each response reaches the socket in one write: head and body together, never apart."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn

from consentry.app import create_app
from consentry.serving import CoalescingTransport, GuardedH11Protocol, GuardedHttpToolsProtocol
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


class _Recording:
    """The socket's transport, noting every write it is given."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _recording(protocol: type[Any], writes: list[bytes]) -> type[Any]:
    class Recorded(protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_Recording(transport, writes))

    return Recorded


@asynccontextmanager
async def _serving(url: str, protocol: type[Any]) -> AsyncIterator[int]:
    """The app served in this process by uvicorn with `protocol`; yields the port."""
    app = create_app(make_settings(url))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=protocol, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        # uvicorn says it has started by a flag only; a server that failed to start has ended.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert server.started, task.result()
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def _exchange(port: int, request: bytes) -> bytes:
    """Send `request` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return answer


@pytest.mark.parametrize("protocol", [GuardedHttpToolsProtocol, GuardedH11Protocol])
async def test_a_response_goes_out_in_one_write(migrated_sqlite: str, protocol: type[Any]) -> None:
    writes: list[bytes] = []
    async with _serving(migrated_sqlite, _recording(protocol, writes)) as port:
        answer = await _exchange(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"status":"ok"}')
    # h11 ends a closing connection's response with an empty write: nothing is sent apart.
    assert [write for write in writes if write] == [answer]


async def test_two_requests_on_one_connection_get_a_write_each(migrated_sqlite: str) -> None:
    writes: list[bytes] = []
    async with _serving(migrated_sqlite, _recording(GuardedHttpToolsProtocol, writes)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(2):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await asyncio.wait_for(reader.readexactly(length), 10)
                assert body == b'{"status":"ok"}'
        finally:
            writer.close()
            await writer.wait_closed()
    assert len(writes) == 2
    assert all(write.startswith(b"HTTP/1.1 200 ") for write in writes)


async def test_what_was_held_is_dropped_once_the_connection_is_closing() -> None:
    """A write held for the end of the turn meets a connection already closing: it is not sent
    (the socket's transport would take it in silence, and warn after a few)."""
    loop = asyncio.get_running_loop()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        sent: list[bytes] = []
        sending = CoalescingTransport(_Recording(transport, sent))  # type: ignore[arg-type]
        sending.write(b"held")
        transport.close()
        await asyncio.sleep(0.05)  # past the end of the turn that wrote
        assert sent == []
    finally:
        server.close()
        await server.wait_closed()
