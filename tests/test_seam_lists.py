"""`column.in_(values)` through the seam: one parameter per value, on both databases."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import bindparam, select

from consentry.db import Query
from consentry.providers.models import Provider
from tests.providers.support import create

pytestmark = pytest.mark.anyio


async def test_a_list_filter_built_per_call_reads_its_rows(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for provider_id, category in [("a-cdn", "necessary"), ("b-stats", "performance")]:
        await create(client, provider_id, category=category)
    query = select(Provider.id).where(Provider.category.in_(["performance", "functional"]))
    async with app.state.database.reader() as reader:
        assert [row["id"] for row in await reader.all(query)] == ["b-stats"]
        assert await reader.all(select(Provider.id).where(Provider.category.in_([]))) == []


async def test_a_statement_built_once_refuses_a_list(app: FastAPI) -> None:
    """Its list would be fixed at the values of its first use."""
    query = Query(select(Provider.id).where(Provider.id.in_(bindparam("ids", expanding=True))))
    if app.state.database.dialect != "postgresql":
        pytest.skip("SQLAlchemy expands the list per call on SQLite")
    with pytest.raises(ValueError, match="a list of values per call"):
        async with app.state.database.reader() as reader:
            await reader.all(query, {"ids": ["a"]})
