"""The preference center: toggles that persist, history, providers, and /privacy with a token."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage, PlatformServer, artifact, open_platform, server_state


def test_toggle_persists_across_reloads_and_appears_in_history(
    page: Page, platform: PlatformServer, service: str
) -> None:
    open_platform(page, platform)
    page.get_by_role("button", name="Customize").click()
    dialog = page.get_by_role("dialog", name="Privacy settings")
    expect(dialog).to_be_visible()
    page.screenshot(path=artifact("preferences.png"))
