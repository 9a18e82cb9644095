"""The banner on a first visit: reject, accept, and a reload that asks the server."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import PlatformServer, artifact, open_platform, server_state

OPTIONAL = ("performance", "functional", "customization")


def _subject(page: Page) -> str:
    subject: str = page.evaluate("Consentry.state().subject_id")
    return subject


def test_first_visit_shows_banner_and_runs_nothing_optional(
    page: Page, platform: PlatformServer
) -> None:
    state = open_platform(page, platform)
    banner = page.locator("#consentry .banner")
    expect(banner).to_be_visible()
    expect(banner.get_by_role("heading", name="Your privacy choices")).to_be_visible()
    assert state["revision"] == 0
    assert page.evaluate("window.ran") == ["page"]
    assert page.evaluate("[Consentry.allowed('necessary'), Consentry.allowed('performance')]") == [
        True,
        False,
    ]
    # The anonymous id lives in a first-party cookie of the platform's origin.
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["consentry_id"]["value"] == _subject(page).replace(":", "%3A")
    assert cookies["consentry_id"]["domain"] == "localhost"
    page.screenshot(path=artifact("banner.png"))
