"""Providers in other languages: stored translations, and `?language=` on every read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import admin, anon_id
from tests.providers.support import PROVIDERS, body, create

pytestmark = pytest.mark.anyio

GERMAN = {
    "name": "Beispiel-Videonetz",
    "purpose": "Liefert Lernvideos von Servern in der Nähe der Lernenden aus.",
    "data_shared": {"ip_address": "IP-Adresse"},
}


async def test_language_picks_a_translation_or_falls_back_to_english(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client, translations={"DE": GERMAN})
    # Tags are kept in lower case, so a read matches them in any case.
    assert created["translations"] == {"de": GERMAN}
    assert created["name"] == "Example Video Network"

    async def one(language: str | None) -> dict[str, Any]:
        params = {"language": language} if language else {}
        response = await client.get(f"{PROVIDERS}/video-cdn", params=params)
        assert response.status_code == 200
        found: dict[str, Any] = response.json()
        return found

    for language in ("de", "DE", "de-AT"):
        assert (await one(language))["name"] == GERMAN["name"], language
        assert (await one(language))["purpose"] == GERMAN["purpose"]
    for language in (None, "en", "fr"):
        assert (await one(language))["name"] == "Example Video Network", language
    listed = (await client.get(PROVIDERS, params={"language": "de"})).json()["items"]
    assert [p["name"] for p in listed] == [GERMAN["name"]]
    mine = await client.get(f"/v1/subjects/{anon_id()}/providers", params={"language": "de"})
    assert [p["name"] for p in mine.json()["items"]] == [GERMAN["name"]]


@pytest.mark.parametrize(
    "translations",
    [
        {"de": {**GERMAN, "data_shared": {"email_address": "E-Mail-Adresse"}}},
        {"de": {"name": "Nur ein Name"}},
        {"de": {**GERMAN, "extra": "x"}},
        {"deutsch-language": GERMAN},
        {"de": {**GERMAN, "name": "  "}},
        {"de": {**GERMAN, "purpose": "a\u0000b"}},
    ],
    ids=[
        "label of an item not shared",
        "no purpose",
        "unknown field",
        "not a tag",
        "blank",
        "control character",
    ],
)
async def test_a_bad_translation_is_refused(
    client: httpx.AsyncClient, translations: dict[str, Any]
) -> None:
    response = await client.post(PROVIDERS, json=body(translations=translations), headers=admin())
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert (await client.get(PROVIDERS)).json()["items"] == []


@pytest.mark.parametrize("language", ["x", "de\u0000", "de-" + "a" * 40])
async def test_a_bad_language_query_is_refused(client: httpx.AsyncClient, language: str) -> None:
    response = await client.get(PROVIDERS, params={"language": language})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_put_without_translations_removes_them_and_is_audited(
    client: httpx.AsyncClient,
) -> None:
    await create(client, translations={"de": GERMAN})
    same = await client.put(
        f"{PROVIDERS}/video-cdn", json=body(translations={"de": GERMAN}), headers=admin()
    )
    assert same.json()["updated_at"] == same.json()["created_at"]
    cleared = await client.put(f"{PROVIDERS}/video-cdn", json=body(), headers=admin())
    assert cleared.json()["translations"] == {}
    log = (await client.get("/v1/audit-log", headers=admin())).json()["items"]
    assert log[0]["details"] == {
        "before": {"translations": {"de": GERMAN}},
        "after": {"translations": {}},
    }
