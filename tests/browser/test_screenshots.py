"""Screenshots for people to look at: desktop and a 390 px phone, light and dark, both languages.

Each combination leaves the banner (EU and California), the preference center (top and bottom)
and `/privacy` in `test-artifacts/screens/`, and checks the layout a person notices first: every
switch in one column on its title's line, the dialog's tools on one line, a Close at the bottom,
and on a phone banner buttons as wide as the banner.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import NewPage, PlatformServer, artifact, open_platform
from tests.helpers import user_token

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
LOCALES = {"en": "en-US", "de": "de-DE"}


def _shot(page: Page, name: str, *, full_page: bool = False) -> None:
    page.screenshot(path=artifact(f"screens/{name}.png"), full_page=full_page)


def _box(locator: Locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None
    return dict(box)


def _same_line(first: dict[str, float], second: dict[str, float]) -> bool:
    """Whether two boxes share a line: each one's vertical middle lies within the other."""
    middle = second["y"] + second["height"] / 2
    return first["y"] <= middle <= first["y"] + first["height"]


def _check_switches(frame: Locator) -> None:
    """Every switch on its title's line, and all of them in one column."""
    lefts = set()
    # Category cards only: connections to outside tools share the card style, without a switch.
    for category in frame.locator("li.cat:not(.conn)").all():
        switch = _box(category.get_by_role("switch"))
        assert _same_line(_box(category.locator("h2, h3, h4").first), switch), category
        lefts.add(round(switch["x"]))
    assert len(lefts) == 1, lefts


def _check_tools(frame: Locator) -> None:
    """The language button (and Close) on the title's line."""
    title = _box(frame.locator(".top").first.locator("h1, h2").first)
    for tool in frame.locator(".top .tools > *").all():
        assert _same_line(title, _box(tool)) or _box(tool)["y"] < title["y"] + 4, tool


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
    options: dict[str, Any] = {
        "viewport": VIEWPORTS[size],
        "color_scheme": scheme,
        "locale": LOCALES[language],
    }
    for region in ("DE", "US-CA"):
        page = new_page(**options)
        open_platform(page, platform, region=region)
        banner = page.locator("#consentry .banner")
        expect(banner).to_be_visible()
        expect(banner.locator("[data-policy]")).to_be_visible()
        _shot(page, f"banner-{region.lower()}-{suffix}")
        if size == "phone":
            inner = banner.evaluate(
                "el => el.clientWidth - parseFloat(getComputedStyle(el).paddingLeft)"
                " - parseFloat(getComputedStyle(el).paddingRight)"
            )
            for button in banner.locator(".actions .btn").all():
                assert _box(button)["width"] >= inner - 1, (button, inner)

    page = new_page(**options)
    open_platform(page, platform, region="DE")
    page.locator("#consentry .banner [data-action=customize]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("ul.providers").first).to_be_visible()
    _check_switches(dialog)
    dialog.evaluate("el => { el.scrollTop = 0; }")
    _check_tools(dialog)
    _shot(page, f"dialog-{suffix}")
    # A provider receiving data now, opened: what it gets, where, under which safeguard.
    dialog.locator("section ul.providers summary").first.click()
    close = dialog.locator("[data-action=close]").last
    close.scroll_into_view_if_needed()
    assert dialog.locator("button").last.get_attribute("data-action") == "close"
    _shot(page, f"dialog-bottom-{suffix}")
    close.click()
    expect(dialog).to_have_count(0)

    page = new_page(**options)
    page.goto(
        f"{service}/privacy#token="
        + user_token(f"learner-shots-{suffix}", name="Alex Example", email="alex@example.edu")
    )
    frame = page.locator("#consentry-privacy .page")
    expect(frame.get_by_role("switch").first).to_be_visible()
    expect(frame.locator("ul.providers summary").last).to_be_visible()
    expect(frame.locator(".account")).to_contain_text("Alex Example")
    _check_switches(frame)
    _check_tools(frame)
    for summary in frame.locator("section ul.providers summary").all():
        summary.click()
    _shot(page, f"privacy-{suffix}", full_page=True)
