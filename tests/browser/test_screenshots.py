"""Screenshots for people to look at: desktop and a 390 px phone, light and dark, both languages.

Each combination leaves the banner (EU and California), the preference center and `/privacy` in
`test-artifacts/screens/`, and checks the layout a person would notice first.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage, PlatformServer, artifact, open_platform
from tests.helpers import user_token

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
LOCALES = {"en": "en-US", "de": "de-DE"}


def _shot(page: Page, name: str, *, full_page: bool = False) -> None:
    page.screenshot(path=artifact(f"screens/{name}.png"), full_page=full_page)


@pytest.mark.parametrize("language", list(LOCALES))
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_screenshots(
    new_page: NewPage,
    platform: PlatformServer,
    service: str,
    size: str,
    scheme: str,
    language: str,
) -> None:
    """The banner in both regimes, the dialog and /privacy, as a learner sees them."""
    suffix = f"{size}-{scheme}-{language}"
    options = {"viewport": VIEWPORTS[size], "color_scheme": scheme, "locale": LOCALES[language]}
    for region in ("DE", "US-CA"):
        page = new_page(**options)
        open_platform(page, platform, region=region)
        expect(page.locator("#consentry .banner")).to_be_visible()
        _shot(page, f"banner-{region.lower()}-{suffix}")

    page = new_page(**options)
    open_platform(page, platform, region="DE")
    page.locator("#consentry .banner [data-action=customize]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("switch").first).to_be_visible()
    _shot(page, f"dialog-{suffix}")

    page = new_page(**options)
    page.goto(f"{service}/privacy#token={user_token(f'learner-shots-{suffix}')}")
    expect(page.get_by_role("switch").first).to_be_visible()
    page.wait_for_timeout(300)  # the lists below the switches arrive a moment later
    _shot(page, f"privacy-{suffix}", full_page=True)
