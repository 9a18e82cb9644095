"""Every query value of every list route, sent hostile: 422 where API.md says, never 5xx.

The routes and their parameters come from the OpenAPI document, so a list or a filter added
later is walked too. The caller is the strongest one allowed (the admin key, every scope).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from consentry.app import create_app
from consentry.pagination import Cursors
from tests.conftest import make_settings
from tests.helpers import admin, bearer, choice, event, user_token
from tests.integrations.support import integration
from tests.providers.support import create
from tests.test_errors import lenient

pytestmark = pytest.mark.anyio

SUBJECT = "learner-1"
# What fills each path parameter of a list route: a subject that has data in every list.
PATH_VALUES = {"subject_id": SUBJECT, "system_id": "sys-1"}

REPLICA_KEY = "replica-pseudonym-key-0123456789abcdef"

# Timestamps at the edges of what Python and the databases hold, as `?since=` and `?until=`.
TOO_EARLY = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T13:59:59.999999+14:00",
    "0000-12-31T23:59:59Z",
]
TOO_LATE = ["9999-12-31T23:59:59-14:00", "9999-12-31T10:00:00-14:00", "10000-01-01T00:00:00Z"]
EDGES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T14:00:00+14:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T09:59:59.999999-14:00",
]
# Values no query parameter takes: NUL, and more text than any parameter holds.
UNUSABLE = ["\x00", "a\x00", "\x00" * 64, "x" * 5000]


def _unsigned(position: dict[str, Any]) -> str:
    """A cursor as the service wrote them before they were signed: base64url JSON."""
    # json, not orjson: it writes a lone surrogate as an escape where orjson refuses it.
    return base64.urlsafe_b64encode(json.dumps(position).encode()).rstrip(b"=").decode()


# Every shape a cursor position has had, as a list of this service could hold it.
SHAPES: list[dict[str, Any]] = [
    {"seq": 1},
    {"id": 1},
    {"after": "a"},
    {"t": "2026-11-28T12:00:00.000000Z", "id": "x"},
]
# Positions no list holds, whoever signed them.
UNHELD: list[dict[str, Any]] = [
    {"seq": 2**31},
    {"after": "a\x00"},
    {"t": "2026-11-28T12:00:00.000000Z", "id": "\x00"},
    {"t": "0001-01-01T00:00:00+14:00", "id": "x"},
    {"t": "9999-12-31T23:59:59-14:00", "id": "x"},
    {"t": "2026-11-28T12:00:00", "id": "x"},
    {"t": "0001-01-01T00:00:00.000000Z", "id": "x" * 400},
]
# Only a forgery can hold a lone surrogate: the service cannot even write one.
SURROGATE: dict[str, Any] = {"t": "2026-11-28T12:00:00.000000Z", "id": "\ud800"}


@pytest.fixture
async def strong(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The admin key's client, receiving a 500 as a response so every case is reported."""
    async with lenient(app) as http:
        http.headers.update(admin())
        yield http


async def _seed(client: httpx.AsyncClient) -> None:
    """Two items in every list, so each issues a cursor."""
    for system_id in ("sys-1", "sys-2"):
        system = {"id": system_id, "name": system_id, "webhook_url": "https://93.184.215.14/h"}
        response = await client.post("/v1/systems", json={**system, "events": ["consent.changed"]})
        assert response.status_code == 201, response.text
    for performance in (True, False):
        response = await client.put(
            f"/v1/subjects/{SUBJECT}/consent", json=choice(performance, True)
        )
        assert response.status_code == 200, response.text
    batch = {"events": [event(SUBJECT), event(SUBJECT, "functional")]}
    assert (await client.post("/v1/events", json=batch)).json()["accepted"] == 2
    for provider_id in ("video-cdn", "mail-relay"):
        await create(client, provider_id)
    for subject in ("gone-1", "gone-2"):
        response = await client.post("/v1/erasure-requests", json={"subject_id": subject})
        assert response.status_code == 202, response.text
    for integration_id in ("cloud-drive", "calendar"):
        body = integration(integration_id, provider_id="video-cdn")
        assert (await client.post("/v1/integrations", json=body)).status_code == 201
        # Two records of the learner's integration history.
        asked = await client.post(
            f"/v1/subjects/{SUBJECT}/integrations/{integration_id}/requests",
            json={"scopes": ["files.write"]},
        )
        assert asked.status_code == 201, asked.text


def _list_routes(app: FastAPI) -> dict[str, list[dict[str, Any]]]:
    """Each paginated GET route of the document, with its query parameters."""
    routes = {}
    for path, operations in app.openapi()["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        query = [p for p in parameters if p["in"] == "query"]
        if any(p["name"] == "cursor" for p in query):
            routes[path] = query
    return routes


def _url(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), template)


def _is_timestamp(parameter: dict[str, Any]) -> bool:
    schema = parameter["schema"]
    kinds = [schema, *schema.get("anyOf", [])]
    return any(kind.get("format") == "date-time" for kind in kinds)


async def _issued(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(url, params={"limit": 1})
    assert response.status_code == 200, response.text
    cursor: str = response.json()["next_cursor"]
    assert cursor, url
    return cursor


def _tampered(cursor: str) -> list[str]:
    """The cursor with one character changed in each place, and cut short."""
    flip = {c: ("A" if c != "A" else "B") for c in set(cursor)}
    return [
        *(cursor[:i] + flip[cursor[i]] + cursor[i + 1 :] for i in range(0, len(cursor), 7)),
        cursor[:-1],
        cursor + "A",
        cursor.replace(".", ""),
    ]


async def _cases(
    app: FastAPI, client: httpx.AsyncClient, template: str, query: list[dict[str, Any]]
) -> list[tuple[str, str, int]]:
    """(parameter, value, expected status) for every query parameter of a list route."""
    cases: list[tuple[str, str, int]] = []
    for parameter in query:
        name = parameter["name"]
        cases += [(name, value, 422) for value in UNUSABLE]
        if _is_timestamp(parameter):
            cases += [(name, value, 422) for value in TOO_EARLY + TOO_LATE]
            cases += [(name, value, 200) for value in EDGES]
    cases += [("limit", value, 422) for value in ("0", "1001", "-1", "9" * 40, "1e3")]
    cases += [("limit", value, 200) for value in ("1", "1000")]
    ours = await _issued(client, _url(template))
    cases.append(("cursor", ours, 200))
    cases += [("cursor", value, 422) for value in _tampered(ours)]
    for version in (1, 2):
        cases += [
            ("cursor", _unsigned({"v": version, **position}), 422)
            for position in [*SHAPES, *UNHELD, SURROGATE]
        ]
    # Signed as the service signs, by a service with another key.
    stranger = Cursors(b"another service's key")
    kinds = (
        "consent_history",
        "events",
        "audit_log",
        "erasure_requests",
        "providers",
        "systems",
        "webhook_deliveries",
    )
    for kind in kinds:
        cases += [("cursor", stranger.encode(kind, position), 422) for position in SHAPES]
    # Signed with this service's own key, yet holding what no list of it holds.
    cursors = (await app.state.pseudonyms.get()).cursors
    for kind in kinds:
        cases += [("cursor", cursors.encode(kind, position), 422) for position in UNHELD]
    # A cursor this service issued for another list. A subject's providers are the registry
    # filtered, in the same order, so those two lists share their cursors.
    for other in _list_routes(app):
        if other.endswith("/providers") != template.endswith("/providers"):
            cases.append(("cursor", await _issued(client, _url(other)), 422))
    return cases


LISTS = [
    "/v1/subjects/{subject_id}/consent/history",
    "/v1/subjects/{subject_id}/events",
    "/v1/audit-log",
    "/v1/erasure-requests",
    "/v1/providers",
    "/v1/subjects/{subject_id}/providers",
    "/v1/systems",
    "/v1/systems/{system_id}/deliveries",
    "/v1/integrations",
    "/v1/subjects/{subject_id}/integrations",
    "/v1/subjects/{subject_id}/integrations/history",
]


@pytest.mark.parametrize("template", LISTS)
async def test_hostile_query_values_on_every_list_are_422_never_5xx(
    app: FastAPI, strong: httpx.AsyncClient, template: str
) -> None:
    routes = _list_routes(app)
    await _seed(strong)
    wrong = []
    for name, value, expected in await _cases(app, strong, template, routes[template]):
        response = await strong.get(_url(template), params={name: value})
        if response.status_code != expected or (
            expected == 422
            and [error["loc"] for error in response.json().get("errors", [])] != [["query", name]]
        ):
            wrong.append((name, value[:40], response.status_code, response.text[:160]))
    assert wrong == []


async def test_every_list_route_is_walked(app: FastAPI) -> None:
    assert set(_list_routes(app)) == set(LISTS)


@pytest.mark.parametrize("value", TOO_EARLY + TOO_LATE + ["%00"])
@pytest.mark.parametrize("name", ["since", "until"])
async def test_the_subjects_own_token_gets_422_for_a_time_out_of_range(
    app: FastAPI, name: str, value: str
) -> None:
    """The issue's first report: the learner's own JWT was enough for a 500."""
    async with lenient(app) as http:
        response = await http.get(
            f"/v1/subjects/{SUBJECT}/events",
            params={name: value.replace("%00", "\x00")},
            headers=bearer(user_token(SUBJECT)),
        )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(("key", "status"), [(REPLICA_KEY, 200), ("x" * 32 + "another", 422)])
async def test_a_replica_with_the_same_pseudonym_key_takes_the_cursor(
    app: FastAPI, database_url: str, key: str, status: int
) -> None:
    """Cursors are signed by a key derived from CONSENTRY_PSEUDONYM_KEY, which replicas share."""
    issuer = create_app(make_settings(database_url, pseudonym_key=REPLICA_KEY))
    replica = create_app(make_settings(database_url, pseudonym_key=key))
    async with issuer.router.lifespan_context(issuer), lenient(issuer) as http:
        http.headers.update(admin())
        await _seed(http)
        cursor = await _issued(http, "/v1/audit-log")
    async with replica.router.lifespan_context(replica), lenient(replica) as other:
        response = await other.get("/v1/audit-log", params={"cursor": cursor}, headers=admin())
    assert response.status_code == status, response.text


async def test_every_other_query_value_refuses_nul_and_excess(
    app: FastAPI, strong: httpx.AsyncClient
) -> None:
    """The routes that are no list take query values too (the consent read's `region`)."""
    lists = _list_routes(app)
    wrong = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            for name in [p["name"] for p in query if path not in lists]:
                for value in UNUSABLE:
                    response = await strong.request(method, _url(path), params={name: value})
                    if response.status_code != 422:
                        wrong.append((method, path, name, value[:8], response.status_code))
    assert wrong == []


PATHS = {
    "/v1/providers/{}": ["get", "put", "delete"],
    "/v1/erasure-requests/{}": ["get", "delete"],
    "/v1/subjects/{}/consent": ["get", "put", "patch"],
    "/v1/subjects/{}/consent/history": ["get"],
    "/v1/subjects/{}/events": ["get"],
    "/v1/subjects/{}/providers": ["get"],
    "/v1/subjects/{}/export": ["get"],
    "/v1/systems/{}": ["get", "put", "delete"],
    "/v1/systems/{}/deliveries": ["get"],
}


@pytest.mark.parametrize("value", ["%00", "a%00b", "%ED%A0%80", "%C0%80", "x" * 300])
@pytest.mark.parametrize("path", list(PATHS))
async def test_hostile_path_ids_are_422_never_5xx(
    strong: httpx.AsyncClient, path: str, value: str
) -> None:
    for method in PATHS[path]:
        body = {} if method in ("put", "patch") else None
        response = await strong.request(method, path.format(value), json=body)
        assert response.status_code == 422, (method, response.text)
