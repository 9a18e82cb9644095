"""The registry's list: ordered by id, paginated with `limit` and an opaque cursor."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from tests.providers.support import PROVIDERS, create
from tests.test_errors import assert_problem

pytestmark = pytest.mark.anyio


async def _page(client: httpx.AsyncClient, **params: Any) -> tuple[list[str], str | None]:
    response = await client.get(PROVIDERS, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    return [item["id"] for item in page["items"]], page["next_cursor"]


async def _walk(client: httpx.AsyncClient, limit: int) -> list[str]:
    """Every id, page after page."""
    ids: list[str] = []
    cursor = None
    while True:
        page, cursor = await _page(client, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert 0 < len(page) <= limit, "a page that promises more must hold some"
        ids += page
        if cursor is None:
            return ids


def _forged(position: dict[str, Any]) -> str:
    payload = orjson.dumps({"v": 1, **position})
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


async def test_an_empty_registry(client: httpx.AsyncClient) -> None:
    assert await _page(client) == ([], None)


async def test_ordered_by_id_byte_by_byte(client: httpx.AsyncClient) -> None:
    # In "C" order a hyphen sorts before every letter and digit; many locales ignore it instead.
    for provider_id in ("ab", "a-z", "b1", "0cdn", "a"):
        await create(client, provider_id)
    assert (await _page(client))[0] == ["0cdn", "a", "a-z", "ab", "b1"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_pages_cover_the_list_once(client: httpx.AsyncClient, limit: int) -> None:
    ids = [f"provider-{number:02d}" for number in range(7)]
    for provider_id in reversed(ids):
        await create(client, provider_id)
    assert await _walk(client, limit) == ids


async def test_a_cursor_survives_changes_before_its_place(client: httpx.AsyncClient) -> None:
    for provider_id in ("b", "c", "d"):
        await create(client, provider_id)
    first, cursor = await _page(client, limit=2)
    assert first == ["b", "c"]
    await create(client, "a")
    assert await _page(client, limit=2, cursor=cursor) == (["d"], None)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "ten"},
        {"cursor": "not-a-cursor"},
        {"cursor": _forged({"id": 3})},
        {"cursor": _forged({"after": 3})},
        {"cursor": _forged({"after": "Not A Slug"})},
        {"cursor": _forged({"after": "nul\u0000"})},
        {"cursor": "x" * 513},
    ],
    ids=lambda params: str(params)[:40],
)
async def test_bad_paging_is_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert_problem(await client.get(PROVIDERS, params=params), 422, "validation_error")
