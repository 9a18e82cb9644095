"""The benchmark's seeding survives a connection the server dropped, and only that."""

from __future__ import annotations

import httpx
import pytest
from bench.api import _ATTEMPTS, _request
from bench.errors import HarnessError

pytestmark = pytest.mark.anyio


def _client(
    failures: int, error: type[httpx.TransportError]
) -> tuple[httpx.AsyncClient, list[int]]:
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if len(sent) <= failures:
            raise error("closed without an answer", request=request)
        return httpx.Response(200, json={"ok": True})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://s"), sent


async def test_a_dropped_request_is_sent_again() -> None:
    client, sent = _client(_ATTEMPTS - 1, httpx.RemoteProtocolError)
    async with client:
        response = await _request(client, "PUT", "/v1/subjects/s/consent", json={})
    assert response.status_code == 200
    assert len(sent) == _ATTEMPTS


async def test_a_connection_that_keeps_dropping_ends_the_run_with_a_harness_error() -> None:
    client, sent = _client(_ATTEMPTS, httpx.ReadError)
    async with client:
        with pytest.raises(HarnessError, match="ReadError"):
            await _request(client, "GET", "/v1/subjects/s/consent")
    assert len(sent) == _ATTEMPTS


async def test_a_timeout_is_not_sent_again() -> None:
    client, sent = _client(1, httpx.ReadTimeout)
    async with client:
        with pytest.raises(httpx.ReadTimeout):
            await _request(client, "GET", "/v1/subjects/s/consent")
    assert len(sent) == 1
