"""A webhook attempt sends its whole request in one write: head, body and end together."""

from __future__ import annotations

import asyncio

import pytest

from consentry.systems.connections import Link
from consentry.systems.delivery import _exchange

pytestmark = pytest.mark.anyio


class _Recording:
    """The writer side of the connection, noting every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    async def drain(self) -> None:
        """Nothing waits: the bytes are only noted."""


async def test_the_request_goes_out_in_one_write() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"HTTP/1.1 204 No Content\r\n\r\n")
    reader.feed_eof()
    writer = _Recording()
    link = Link(reader, writer)  # type: ignore[arg-type]
    headers = {"host": "hooks.example", "content-length": "13"}
    answer, _ = await _exchange(link, "/hook", headers, b'{"type":"x"}\n')
    assert answer.code == 204
    assert len(writer.writes) == 1
    sent = writer.writes[0]
    assert sent.startswith(b"POST /hook HTTP/1.1\r\n")
    assert sent.endswith(b'\r\n\r\n{"type":"x"}\n')
