"""The integration check answered directly gives the answers of FastAPI's route, refusals too."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import admin, bearer, user_token
from tests.integrations.support import declare

pytestmark = pytest.mark.anyio

LEARNER = "learner-check-1"
# Headers that differ from one request to the next whoever answers.
_VARYING = {"date", "x-request-id", "content-length"}


def _requests() -> list[tuple[str, dict[str, str]]]:
    own = bearer(user_token(LEARNER))
    base = f"/v1/subjects/{LEARNER}/integrations"
    return [
        (f"{base}/cloud-drive", own),
        (f"{base}/cloud-drive", admin()),
        (f"{base}/no-such-integration", own),
        (f"{base}/Not%20An%20Id", own),
        ("/v1/subjects/bad%20id/integrations/cloud-drive", admin()),
        (f"{base}/cloud-drive", {}),
        (f"{base}/cloud-drive", bearer(user_token("someone-else"))),
        (f"{base}/cloud-drive", bearer("not-a-token")),
        # The learner's history is a route of its own, tried before the check's template.
        (f"{base}/history", own),
        (f"{base}/history?limit=0", own),
    ]


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING}
    return response.status_code, headers, response.json()


async def test_each_answer_is_the_routes(
    client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    await declare(client)
    decision = {"decision": "approve", "scopes": ["files.write"]}
    approved = await client.put(
        f"/v1/subjects/{LEARNER}/integrations/cloud-drive",
        json=decision,
        headers=bearer(user_token(LEARNER)),
    )
    assert approved.status_code == 200, approved.text
    statuses = set()
    for path, headers in _requests():
        direct = _answer(await client.get(path, headers=headers))
        through_router = _answer(await routed.get(path, headers=headers))
        assert direct == through_router, path
        statuses.add(direct[0])
    assert statuses >= {200, 401, 403, 404, 422}
    history = await client.get(f"/v1/subjects/{LEARNER}/integrations/history", headers=admin())
    assert history.status_code == 200
    assert "items" in history.json()
