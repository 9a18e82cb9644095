"""The webhook attempt's HTTP/1.1: the request it writes, and what it makes of answers."""

from __future__ import annotations

import pytest

from consentry.systems import http1

HEADERS = [("host", "hooks.example:8443"), ("content-length", "2")]


def test_a_request_is_its_line_its_headers_and_its_body() -> None:
    assert http1.request("/hooks?v=1", HEADERS, b"{}") == (
        b"POST /hooks?v=1 HTTP/1.1\r\nhost: hooks.example:8443\r\ncontent-length: 2\r\n\r\n{}"
    )


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/hooks\r\nx-injected: 1", HEADERS),
        ("/hooks", [("host", "hooks.example\r\nx-injected: 1")]),
        ("/hooks", [("x-token", "a\nb")]),
        ("/hooks", [("x-token", "a\x00b")]),
        ("/hooks", [("x-token", "a\tb")]),
        ("/h\u00f6oks", HEADERS),
        ("/hooks", [("x-token", "caf\u00e9")]),
    ],
)
def test_a_request_that_would_break_its_head_is_not_written(
    path: str, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(http1.Unsendable):
        http1.request(path, headers, b"{}")


def _fed(*chunks: bytes) -> http1.Response:
    answer = http1.Response()
    for chunk in chunks:
        answer.feed(chunk)
    return answer


def test_an_empty_answer_is_read_whole_and_leaves_the_connection_usable() -> None:
    answer = _fed(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n")
    assert (answer.status, answer.retry_after, answer.reusable) == (204, None, True)


def test_an_answer_split_anywhere_is_read_the_same() -> None:
    whole = b"HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nContent-Length: 4\r\n\r\nbusy"
    for cut in range(1, len(whole)):
        answer = _fed(whole[:cut], whole[cut:])
        assert (answer.status, answer.retry_after, answer.reusable) == (503, "120", True), cut


def test_informational_answers_are_passed_over() -> None:
    answer = _fed(
        b"HTTP/1.1 100 Continue\r\nRetry-After: 5\r\n\r\n"
        b"HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\n\r\n"
    )
    assert (answer.status, answer.retry_after, answer.reusable) == (429, None, True)


def test_a_chunked_answer_is_whole_once_its_last_chunk_is_here() -> None:
    answer = _fed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")
    assert (answer.status, answer.reusable) == (200, False)
    answer.feed(b"0\r\n\r\n")
    assert answer.reusable


@pytest.mark.parametrize(
    "head",
    [
        # The receiver closes: said, or by HTTP/1.0's default.
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        # The body is still coming, or ends only when the connection does.
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\n\r\nbody until the end",
        # Anything after the answer.
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n\x00\x01garbage",
    ],
)
def test_an_answer_that_does_not_end_cleanly_leaves_the_connection_to_be_closed(
    head: bytes,
) -> None:
    answer = _fed(head)
    assert answer.status in (200, 204)
    assert not answer.reusable


@pytest.mark.parametrize(
    "garbage",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 2OO OK\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00"],
)
def test_what_is_not_an_answer_is_malformed(garbage: bytes) -> None:
    with pytest.raises(http1.Malformed):
        _fed(garbage)


def test_switching_protocols_is_no_answer() -> None:
    with pytest.raises(http1.Malformed):
        _fed(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        )
