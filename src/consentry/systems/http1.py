"""HTTP/1.1 for webhook attempts: the request written in one piece, the answer read by httptools.

A webhook attempt is always the same exchange: one POST with a body of known length, then the
status and headers of the answer. Written by hand and read by llhttp (through httptools, as the
server side of the service reads requests), it costs the worker a fraction of what a general
client's state machine does, and the worker spends its time on little else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httptools

# What may not appear in a request line or a header: it would end the line early (CR, LF) or is
# refused by servers (NUL and the other controls). Every value is the service's own, and the
# URL was checked at registration; this only makes certain.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Unsendable(ValueError):
    """A request that cannot be written: a control character, or a character outside ASCII."""


class Malformed(Exception):
    """An answer that is not HTTP/1.x, before its status could be read."""


def request(path: str, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """A POST of `body` to `path`, its head and body in one piece."""
    lines = [f"POST {path} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if _CONTROL.search(" ".join(lines)):
        raise Unsendable("a control character in the request's head")
    try:
        head = "\r\n".join(lines).encode("ascii")
    except UnicodeEncodeError:
        raise Unsendable("a character outside ASCII in the request's head") from None
    return head + b"\r\n\r\n" + body


class Response:
    """A response, fed as it arrives: its final status, its Retry-After, and whether it ended.

    Informational answers (1xx) before it are passed over. Bytes that break the rules after the
    status is known leave the status standing; the connection is then not kept.
    """

    def __init__(self) -> None:
        self.status: int | None = None
        self.retry_after: str | None = None
        # The whole answer is here, and the receiver did not ask to close: the connection may
        # carry another request.
        self.reusable = False
        self._retry: str | None = None
        self._ended = False
        self._parser = httptools.HttpResponseParser(self)

    def feed(self, data: bytes) -> None:
        """Read what arrived; Malformed when it is not an answer."""
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            # An upgrade (101 Switching Protocols) is no answer to a webhook either.
            self.reusable = False
            if self.status is None:
                raise Malformed from None

    # httptools' callbacks.

    def on_message_begin(self) -> None:
        self._retry = None
        if self._ended:
            self.reusable = False  # bytes after the answer: nothing an honest receiver sends

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        code = self._parser.get_status_code()
        if code >= 200 and self.status is None:
            self.status = code
            self.retry_after = self._retry

    def on_message_complete(self) -> None:
        if self.status is not None and not self._ended:
            self._ended = True
            self.reusable = self._parser.should_keep_alive()
