"""Fixtures of the systems tests: the app allows webhooks to 127.0.0.1, and a live receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consentry.settings import Settings
from tests.conftest import make_settings
from tests.systems.receiver import Receiver, receiving


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, webhook_allow_hosts=["127.0.0.1"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as live:
        yield live
