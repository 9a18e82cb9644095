"""The HTTP protocol of `consentry serve`: uvicorn's httptools parser, with bounded heads."""

from __future__ import annotations

import re
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from consentry.errors import PROBLEM_JSON, HeadersTooLarge, problem_body

# uvicorn's own default for h11, which `consentry serve` always overrides from its settings.
_DEFAULT_HEAD_BYTES = 16 * 1024
# An empty line ends a head; llhttp also takes a bare LF as a line's end.
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class HeadLimitedHttpTools(HttpToolsProtocol):
    """httptools, refusing a request head (request line and headers) past a size with 431.

    httptools (llhttp) has no limit of its own: it gathers a header of any size in memory, and
    parsing megabytes of it holds the event loop for every other request of the process. The
    bytes of each head are counted as they arrive, before the parser sees them. A head that starts
    in the same read as the end of the request before it is counted from the next read on, so one
    read (at most 256 KiB) is the slack there.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The limit h11 applies to unfinished events, applied here to whole heads.
        self._head_limit: int = self.config.h11_max_incomplete_event_size or _DEFAULT_HEAD_BYTES
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            seen = self._tail + data
            end = _HEAD_END.search(seen)
            # Only the bytes up to the head's end count: the body may follow in the same read.
            counted = len(data) if end is None else end.end() - len(self._tail)
            self._head_bytes += counted
            if self._head_bytes > self._head_limit:
                self._refuse()
                return
            self._tail = seen[-3:] if end is None else b""
            if end is not None:
                self._in_head = False
        super().data_received(data)

    def on_headers_complete(self) -> None:
        # The parser's word is final, whatever line ends the head used.
        self._in_head = False
        self._tail = b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""

    def _refuse(self) -> None:
        self._refused = True
        self.logger.warning("Request head past %d bytes refused.", self._head_limit)
        body = problem_body(
            HeadersTooLarge(
                f"The request line and headers may hold at most {self._head_limit} bytes."
            )
        )
        content = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"cache-control: no-store\r\n",
                b"x-content-type-options: nosniff\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
