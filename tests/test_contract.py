"""Guards on the whole app: authentication by default, and a README that lists every setting."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from consentry.settings import Settings

pytestmark = pytest.mark.anyio

# The reads API.md makes public; every other route must authenticate its caller.
PUBLIC = {
    ("GET", "/v1/policy"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/providers"),
    ("GET", "/v1/providers/{provider_id}"),
    ("GET", "/v1/integrations"),
    ("GET", "/v1/integrations/{integration_id}"),
}


async def test_every_route_but_the_public_ones_authenticates(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Without a token, every route but the public ones answers 401, whatever else is wrong."""
    routes = [
        context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and context.include_in_schema
    ]
    endpoints = {(method, context.path) for context in routes for method in context.methods}
    assert endpoints >= PUBLIC | {("GET", "/v1/subjects/{subject_id}/consent")}
    for context in routes:
        # A subject that is not anonymous: an `anon:` id is its own capability on some routes.
        path = re.sub(r"\{subject_id\}", "learner-1", context.path)
        path = re.sub(r"\{[a-z_]+\}", "x", path)
        for method in context.methods:
            response = await client.request(method, path, json={})
            if (method, context.path) in PUBLIC:
                assert response.status_code != 401, (method, path)
            else:
                assert response.status_code == 401, (method, path, response.text)


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`CONSENTRY_{name.upper()}`" in readme, name
