"""The OpenAPI document is one a client can code against: every operation told, shown and true.

Walks the document the app serves: each operation has a written summary, a description and
examples that fit their schemas; each error says when it happens and carries the contract's
codes; and the security each operation declares is what the service enforces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator

from consentry.app import create_app
from consentry.keys.format import SCOPES
from consentry.settings import Settings
from tests.helpers import anon_id, bearer, make_key, user_token

pytestmark = pytest.mark.anyio

DOCUMENT = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()
METHODS = ("get", "put", "post", "patch", "delete")
# The error codes of the contract (API.md), by status.
CODES = {
    400: {"malformed_request"},
    401: {"unauthorized"},
    403: {"forbidden"},
    404: {"not_found"},
    409: {"conflict"},
    410: {"subject_erased"},
    412: {"precondition_failed"},
    413: {"payload_too_large"},
    415: {"unsupported_media_type"},
    422: {"validation_error", "required_category", "unknown_policy_version", "unknown_scope"},
    429: {"rate_limited"},
    503: {"service_unavailable"},
}
JSON = "application/json"
# Statuses only a request with a body can get.
BODY_ERRORS = {"400", "412", "413", "415"}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


OPERATIONS = list(operations())
IDS = [f"{method.upper()} {path}" for path, method, _ in OPERATIONS]


def _generated_summary(path: str, method: str, operation: dict[str, Any]) -> str:
    """The summary FastAPI would make from the endpoint's name (its operationId's start)."""
    suffix = re.sub(r"\W", "_", path) + "_" + method
    name = operation["operationId"].removesuffix(suffix)
    return name.replace("_", " ").title()


def _examples(media: dict[str, Any]) -> list[Any]:
    found = [media["example"]] if "example" in media else []
    return found + [entry["value"] for entry in media.get("examples", {}).values()]


def _check(schema: dict[str, Any], value: Any, where: str) -> None:
    # The document is the root resource, so that `#/components/...` references resolve.
    validator = Draft202012Validator({**schema, "components": DOCUMENT["components"]})
    errors = [error.message for error in validator.iter_errors(value)]
    assert not errors, f"{where}: the example does not fit its schema: {errors}"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_is_told(path: str, method: str, operation: dict[str, Any]) -> None:
    summary = operation.get("summary", "")
    assert summary, "no summary"
    assert summary != _generated_summary(path, method, operation), "a generated summary"
    assert len(operation.get("description", "")) >= 40, "no description"
    if operation.get("security"):
        assert "**Access:**" in operation["description"], "who may call it is not told"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_is_shown(path: str, method: str, operation: dict[str, Any]) -> None:
    body = operation.get("requestBody")
    if body is not None:
        media = body["content"]["application/json"]
        examples = _examples(media)
        assert examples, "no request example"
        for example in examples:
            _check(media["schema"], example, "request")
    successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
    assert successes, "no success response"
    for status, response in successes.items():
        assert response.get("description"), f"{status} without a description"
        if status == "204":
            assert not response.get("content"), "a 204 has no body"
            continue
        medias = response.get("content", {})
        assert any(_examples(media) for media in medias.values()), f"no {status} example"
        for media in medias.values():
            for example in _examples(media):
                if "schema" in media:
                    _check(media["schema"], example, status)


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_error_says_when(path: str, method: str, operation: dict[str, Any]) -> None:
    for status, response in operation["responses"].items():
        if status[0] not in "45":
            continue
        description = response.get("description", "")
        assert description and description != HTTPStatus(int(status)).phrase, (
            f"{status} does not say when it happens"
        )
        media = response["content"]["application/problem+json"]
        examples = _examples(media)
        assert examples, f"{status} without an example"
        for example in examples:
            _check(media["schema"], example, status)
            assert example["status"] == int(status)
            assert example["code"] in CODES[int(status)], f"{status}: unknown code"
        if "requestBody" not in operation:
            assert status not in BODY_ERRORS, f"{status} on an operation without a body"


def test_the_schemas_examples_fit_and_every_property_is_described() -> None:
    undescribed = []
    for name, schema in DOCUMENT["components"]["schemas"].items():
        for example in schema.get("examples", []):
            _check(schema, example, name)
        for field, spec in schema.get("properties", {}).items():
            if not spec.get("description"):
                undescribed.append(f"{name}.{field}")
    assert not undescribed


def test_security_names_declared_schemes() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    for path, method, operation in OPERATIONS:
        for requirement in operation.get("security", []):
            assert set(requirement) <= set(schemes), f"{method} {path}: {requirement}"


def _url(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: ids.get(match.group(1), "some-id"), path)


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    ids: dict[str, str],
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> httpx.Response:
    # Without a body, a write stops at its first check after the gate (415): nothing is changed
    # and no webhook host is looked up, yet admission is decided.
    return await client.request(method.upper(), _url(path, ids), json=body, headers=headers)


def _example(operation: dict[str, Any]) -> Any:
    body = operation.get("requestBody")
    return None if body is None else _examples(body["content"][JSON])[0]


async def test_the_security_told_is_the_security_enforced(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Without a token: public and anonymous operations admit, the others answer 401. A key
    holding the scope an operation names is admitted, a key with another scope is refused, and
    where a learner's own token is named, it is admitted."""
    keys = {scope: await make_key(app, scope.replace(":", "-"), scope) for scope in SCOPES}
    bystander = await make_key(app, "bystander", "integrations:read")
    own = bearer(user_token("u-openapi"))
    # A request the learner made, so that routes which find it before judging the caller do.
    erasure = {"subject_id": "u-openapi", "reason": "account_deleted"}
    request_id = (await client.post("/v1/erasure-requests", json=erasure, headers=own)).json()
    named = {"subject_id": "u-openapi", "request_id": request_id["id"]}
    anonymous_ids = {**named, "subject_id": anon_id()}
    named["message_id"] = anonymous_ids["message_id"] = "msg_" + "0" * 32
    for path, method, operation in OPERATIONS:
        where = f"{method.upper()} {path}"
        security = operation.get("security")
        anonymous = security is None or {} in security
        response = await _call(client, method, path, anonymous_ids if anonymous else named)
        assert (response.status_code != 401) if anonymous else (response.status_code == 401), where
        if security and {} in security:
            response = await _call(client, method, path, named)
            assert response.status_code == 401, f"{where}: only anon: ids go without a token"
        elif security:
            response = await _call(client, method, path, anonymous_ids)
            assert response.status_code == 401, f"{where}: an anon: id goes without a token"
        if security and not any("UserToken" in requirement for requirement in security):
            response = await _call(client, method, path, named, own, _example(operation))
            assert response.status_code == 403, f"{where}: a learner's token is refused"
        for requirement in security or []:
            for scope in requirement.get("ApiKey", []):
                admitted = await _call(client, method, path, named, bearer(keys[scope]))
                assert admitted.status_code not in (401, 403), f"{where} with {scope}"
                if scope != "integrations:read":
                    refused = await _call(
                        client, method, path, named, bearer(bystander), _example(operation)
                    )
                    assert refused.status_code == 403, f"{where} without {scope}"
            if "UserToken" in requirement:
                admitted = await _call(client, method, path, named, own)
                assert admitted.status_code not in (401, 403), f"{where} with its own token"
