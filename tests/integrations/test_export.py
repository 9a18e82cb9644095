"""The export holds the learner's connections, their history and the providers they reach."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import admin, bearer, user_token
from tests.integrations.support import PROVIDER, declare, verify

pytestmark = pytest.mark.anyio

LEARNER = "learner-export-1"


async def test_the_export_holds_connections_and_their_history(client: httpx.AsyncClient) -> None:
    await declare(client)
    connection = f"/v1/subjects/{LEARNER}/integrations/cloud-drive"
    await client.post(f"{connection}/requests", json={"scopes": ["files.write"]}, headers=admin())
    body = {"decision": "approve", "scopes": ["files.write"]}
    await client.put(connection, json=body, headers=bearer(user_token(LEARNER)))
    response = await client.get(
        f"/v1/subjects/{LEARNER}/export", headers=bearer(user_token(LEARNER))
    )
    assert response.status_code == 200, response.text
    document = response.json()
    [exported] = document["integrations"]
    assert exported == (await client.get(connection, headers=admin())).json()
    history = document["integration_history"]
    assert [record["status"] for record in history] == ["pending", "approved"]
    assert all("subject_id" not in record and "seq" not in record for record in history)
    verify(list(reversed(history)))  # the export lists the oldest first
    # The provider the approved connection reaches is among the export's providers.
    assert PROVIDER in [provider["id"] for provider in document["providers"]]
