"""A TCP proxy between the service and PostgreSQL that a test can cut and restore."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from sqlalchemy.engine import make_url

T = TypeVar("T")
Cut = Literal["reset", "blackhole"]
_CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a peer that vanished or a firewall that rejects does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One client connection and its connection to the server."""

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter | None) -> None:
        self.client = client
        self.server = server
        # Black-holed: bytes either way are read and dropped, nothing is answered.
        self.dropping = False

    def reset(self) -> None:
        _reset(self.client)
        if self.server is not None:
            _reset(self.server)

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.close()


class Proxy:
    """Forwards 127.0.0.1:port to a server, in a thread of its own, until cut.

    `cut("reset")` resets every open connection and every new one, as when the server is down or
    a firewall rejects. `cut("blackhole")` keeps connections open but drops every byte and
    accepts new ones that never answer, as a network partition does. `restore()` forwards new
    connections again; connections black-holed meanwhile are reset, since the bytes they lost
    cannot be replayed.
    """

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._state: Cut | Literal["forward"] = "forward"
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.accepted = 0
        self.port = 0

    def start(self) -> None:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for link in list(self._links):
                link.reset()

        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def cut(self, how: Cut = "reset") -> None:
        """From now on, no byte reaches either side."""

        async def cut() -> None:
            self._state = how
            for link in list(self._links):
                if how == "reset":
                    link.reset()
                else:
                    link.dropping = True

        self._call(cut())

    def restore(self) -> None:
        """Forward new connections again."""

        async def restore() -> None:
            self._state = "forward"
            for link in list(self._links):
                if link.dropping:
                    link.reset()

        self._call(restore())

    def url(self, database_url: str) -> str:
        """`database_url` pointed at this proxy."""
        changed = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return changed.render_as_string(hide_password=False)

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._state == "reset":
            _reset(writer)
            return
        link = _Link(writer, None)
        self._links.add(link)
        try:
            if self._state == "blackhole":
                link.dropping = True
                await self._pipe(reader, None, link)
                return
            try:
                server_reader, link.server = await asyncio.open_connection(*self._upstream)
            except OSError:
                _reset(writer)
                return
            await asyncio.gather(
                self._pipe(reader, link.server, link),
                self._pipe(server_reader, writer, link),
            )
        finally:
            self._links.discard(link)
            link.close()

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, link: _Link
    ) -> None:
        """Copy bytes one way until either side closes; drop them while the link is cut."""
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if link.dropping or writer is None:
                    continue
                writer.write(data)
                await writer.drain()
        # Half-closes are not forwarded: whichever side ends first ends the link.
        link.close()


@contextmanager
def proxy_to(database_url: str) -> Iterator[Proxy]:
    """A proxy in front of the PostgreSQL server that `database_url` names."""
    url = make_url(database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
