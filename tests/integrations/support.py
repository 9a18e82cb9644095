"""Integrations for tests: a provider, a catalogue entry, and a verifier of the history chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.helpers import admin

PROVIDER = "cloud-drive-inc"
README = Path(__file__).parents[2] / "README.md"


def integration(integration_id: str = "cloud-drive", **fields: Any) -> dict[str, Any]:
    """A valid integration body (POST)."""
    body: dict[str, Any] = {
        "id": integration_id,
        "name": "Cloud drive",
        "kind": "cloud_storage",
        "provider_id": PROVIDER,
        "purpose": "Saves the assignments you hand in to your own cloud drive.",
        "data_shared": ["assignments"],
        "scopes": [
            {"id": "files.write", "description": "Save your assignments in your drive."},
            {"id": "profile.read", "description": "Read your drive's account name."},
        ],
        "default": "ask",
        "translations": {
            "de": {"name": "Cloud-Speicher", "scopes": {"files.write": "Aufgaben ablegen."}}
        },
    }
    body.update(fields)
    return body


async def add_provider(client: httpx.AsyncClient, provider_id: str = PROVIDER) -> None:
    """A provider the integrations can name."""
    body = {
        "id": provider_id,
        "name": "Cloud Drive Inc.",
        "kind": "technology",
        "purpose": "Stores files learners choose to keep in their own drive.",
        "data_shared": ["assignments"],
        # Not `necessary`, which every learner's list shows: one granted to nobody here.
        "category": "customization",
        "countries": ["US"],
    }
    response = await client.post("/v1/providers", json=body, headers=admin())
    assert response.status_code == 201, response.text


async def declare(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """Declare an integration (with its provider, when missing); returns it."""
    provider = fields.get("provider_id", PROVIDER)
    if (await client.get(f"/v1/providers/{provider}")).status_code == 404:
        await add_provider(client, provider)
    response = await client.post("/v1/integrations", json=integration(**fields), headers=admin())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def readme_verifier() -> dict[str, Any]:
    """The README's verifier, run as written: `verify`, `CONSENT_FIELDS`, `INTEGRATION_FIELDS`."""
    readme = README.read_text()
    section = readme[readme.index("## Verifying a consent or integration history") :]
    code = section[section.index("```python") + len("```python") : section.index("```\n\n")]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 -- our own README
    return namespace


def verify(history_newest_first: list[dict[str, Any]]) -> None:
    """Check an integration history as the README tells its readers to."""
    verifier = readme_verifier()
    verifier["verify"](history_newest_first, verifier["INTEGRATION_FIELDS"])
