"""Guards on the whole app: authentication by default, and a README that lists every setting."""

from __future__ import annotations

from pathlib import Path

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from consentry.app import create_app
from consentry.auth import optional_caller
from consentry.settings import Settings

# The routes API.md makes public; every other route must authenticate its caller.
PUBLIC = {"/v1/policy", "/healthz", "/readyz"}


def _authenticates(dependant: Dependant) -> bool:
    return any(
        dependency.call is optional_caller or _authenticates(dependency)
        for dependency in dependant.dependencies
    )


def test_every_route_but_the_public_ones_authenticates() -> None:
    routes = {
        context.path: context.original_route
        for context in iter_route_contexts(create_app(Settings()).routes)
        if isinstance(context.original_route, APIRoute)
    }
    assert set(routes) >= PUBLIC | {"/v1/subjects/{subject_id}/consent"}
    for path, route in routes.items():
        assert _authenticates(route.dependant) != (path in PUBLIC), path


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`CONSENTRY_{name.upper()}`" in readme, name
