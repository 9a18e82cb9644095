"""Schemathesis against the service's own OpenAPI document, through a real `consentry serve`.

Every operation gets generated requests, valid and invalid, as the admin key and as a learner's
own JWT; no answer may be a 5xx or differ from the document in status, content type, headers
or body, and every answer carries the security headers. `CONSENTRY_FUZZ_EXAMPLES` sets the
examples per operation and phase (`make test` keeps it small, `make fuzz` raises it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    CheckContext,
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response

from consentry import migrations
from consentry.app import create_app
from consentry.settings import Settings
from tests.conftest import create_pg_database, drop_pg_database
from tests.helpers import ADMIN_KEY, JWT_SECRET, bearer, user_token
from tests.processes import environment, serving

EXAMPLES = int(os.environ.get("CONSENTRY_FUZZ_EXAMPLES", "10"))
LEARNER = "learner-fuzz"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_base_url: str | None,
) -> Iterator[str]:
    """`consentry serve` on a database of its own, migrated; yields its base URL."""
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'fuzz.db'}"
    elif pg_base_url is None:
        pytest.skip("PostgreSQL is unreachable (see the summary at the end)")
    else:
        url = create_pg_database(pg_base_url)
    try:
        migrations.upgrade(url)
        env = environment(
            CONSENTRY_DATABASE_URL=url,
            CONSENTRY_ADMIN_KEY=ADMIN_KEY,
            CONSENTRY_JWT_SECRET=JWT_SECRET,
            # The generator sends hundreds of requests a second from one address and one key:
            # the limits themselves are tested in test_ratelimit.py.
            CONSENTRY_RATE_LIMIT_ENABLED="false",
        )
        with serving(env, folder / "serve.log", "--no-migrate") as base:
            yield base
    finally:
        if request.param == "postgresql" and pg_base_url is not None:
            drop_pg_database(pg_base_url, url)


# The document the app itself serves at /openapi.json (building the app opens no database).
DOCUMENT = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The learner's leg replaces each generated subject id, which makes the coverage phase's
# boundary cases (mostly about that id) the admin leg's over again: it is left out.
learner_schema = schemathesis.openapi.from_dict(DOCUMENT)
learner_schema.config.phases.coverage.enabled = False

# Answers that hold personal data or an error must never be kept by a cache.
_PRIVATE_PREFIXES = ("/v1/subjects/", "/v1/erasure-requests", "/v1/audit-log", "/v1/events")


@schemathesis.check
def security_headers(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """nosniff everywhere; no-store on personal data and on every error."""
    headers = {name.lower(): values for name, values in response.headers.items()}
    if headers.get("x-content-type-options") != ["nosniff"]:
        raise Failure(
            operation=case.operation.label,
            title="Missing X-Content-Type-Options: nosniff",
            message=f"Headers: {sorted(headers)}",
        )
    private = case.formatted_path.startswith(_PRIVATE_PREFIXES) or response.status_code >= 400
    if private and headers.get("cache-control") != ["no-store"]:
        raise Failure(
            operation=case.operation.label,
            title="Personal data or an error without Cache-Control: no-store",
            message=f"Cache-Control: {headers.get('cache-control')}",
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    security_headers,
]


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schema.parametrize()
@_SETTINGS
def test_requests_of_the_admin_key_conform(case: Case, fuzz_server: str) -> None:
    checks = CHECKS
    if set(case.query or {}) - _documented_query(case):
        # Unknown query parameters are ignored, as pages and proxies add their own (cache
        # busters, campaign tags); API.md refuses unknown fields in bodies only. Such a request
        # is not bad data, whatever else it carries: every other check still applies.
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    case.call_and_validate(base_url=fuzz_server, headers=bearer(ADMIN_KEY), checks=checks)


def _documented_query(case: Case) -> set[str]:
    # The coverage phase also sends methods the path does not have (TRACE, ...): none documented.
    operation = DOCUMENT["paths"][case.operation.path].get(case.method.lower(), {})
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


@learner_schema.parametrize()
@_SETTINGS
def test_requests_of_a_learner_token_conform(case: Case, fuzz_server: str) -> None:
    # The learner's own subject, so its token reaches past the 403 into each route.
    if "subject_id" in (case.path_parameters or {}):
        case.path_parameters = {**(case.path_parameters or {}), "subject_id": LEARNER}
    # A generated bad subject id replaced by a good one is no longer bad data: the admin leg
    # checks that bad data is refused.
    checks = [check for check in CHECKS if check is not negative_data_rejection]
    headers = bearer(user_token(LEARNER))
    case.call_and_validate(base_url=fuzz_server, headers=headers, checks=checks)
