"""Accessible and humane: keyboard alone, visible focus, 200 % zoom, dark mode, two languages."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import (
    NewPage,
    PlatformServer,
    artifact,
    focused,
    history,
    open_platform,
    server_state,
)
from tests.helpers import user_token


def _tab_to(page: Page, key: str, value: str, limit: int = 12) -> list[dict[str, Any]]:
    """Press Tab until the focused element's `key` is `value`; returns every element passed."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        seen.append(focused(page))
        if seen[-1][key] == value:
            return seen
    raise AssertionError(f"{value!r} not reached by Tab: {seen}")


def _assert_outlined(element: dict[str, Any]) -> None:
    assert element["outline"] != "none", element
    assert element["outline_width"] >= 2, element


def test_whole_flow_by_keyboard_alone(page: Page, platform: PlatformServer, service: str) -> None:
    """Tab, Shift+Tab, Enter, Space and Escape from load to a saved choice, focus always visible."""
    open_platform(page, platform)
    passed = _tab_to(page, "action", "customize")
    # The banner comes first in the tab order, so nobody has to cross the page to reach it.
    assert [e["action"] for e in passed] == [None, "accept_all", "reject_all", "customize"]
    assert passed[0]["text"] == "Deutsch"
    for element in passed:
        _assert_outlined(element)

    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Privacy settings")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("switch", name="Performance")).to_be_focused()
    _assert_outlined(focused(page))
    page.keyboard.press("Space")
    expect(dialog.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    # Between two switches: the category's providers, each opened by keyboard too.
    page.keyboard.press("Tab")
    assert focused(page)["tag"] == "summary"
    assert focused(page)["text"] == "Usage analytics"
    _assert_outlined(focused(page))
    page.keyboard.press("Enter")
    expect(dialog.locator("li.cat details[open]")).to_contain_text("Standard Contractual Clauses")
    page.keyboard.press("Tab")
    assert (focused(page)["category"], focused(page)["checked"]) == ("functional", False)
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert (focused(page)["category"], focused(page)["checked"]) == ("performance", True)
    _assert_outlined(focused(page))
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    subject = page.evaluate("Consentry.state().subject_id")
    granted = {k: v["granted"] for k, v in server_state(service, subject)["categories"].items()}
    assert granted == {
        "necessary": True,
        "performance": True,
        "functional": False,
        "customization": False,
    }
    [record] = history(service, subject)
    assert (record["source"], record["method"]) == ("preference_center", "custom")
    expect(page.locator("#consentry .banner")).to_have_count(0)

    # The platform's own link to the settings opens them again, and Escape returns the focus.
    _tab_to(page, "text", "Privacy settings")
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("switch", name="Performance")).to_be_focused()
    assert focused(page)["checked"] is True
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert focused(page)["text"] == "Privacy settings"


def test_erasure_confirmation_by_keyboard(new_page: NewPage, service: str) -> None:
    """The delete dialog opens on Cancel, so Enter twice cannot erase by accident."""
    page = new_page()
    page.goto(f"{service}/privacy#token={user_token('learner-keys-1')}")
    erase = page.get_by_role("button", name="Delete my data")
    erase.focus()
    page.keyboard.press("Enter")
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_be_visible()
    assert focused(page)["action"] == "cancel"
    _assert_outlined(focused(page))
    page.keyboard.press("Enter")
    expect(confirm).to_have_count(0)
    assert focused(page)["action"] == "erase"
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    expect(confirm).to_have_count(0)
    assert server_state(
        service, "learner-keys-1", Authorization=f"Bearer {user_token('learner-keys-1')}"
    )


def _fits(page: Page, control: Locator) -> None:
    control.scroll_into_view_if_needed()
    box = control.bounding_box()
    assert box is not None
    width, height = page.viewport_size["width"], page.viewport_size["height"]  # type: ignore[index]
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, box


def test_usable_at_200_percent_zoom(new_page: NewPage, platform: PlatformServer) -> None:
    """At 640x360 (1280x720 at 200 %): no horizontal scrolling, every control within reach."""
    page = new_page(viewport={"width": 640, "height": 360})
    open_platform(page, platform)
    banner = page.locator("#consentry .banner")
    expect(banner).to_be_visible()
    page.screenshot(path=artifact("banner-zoom-200.png"))
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert banner.evaluate("el => el.scrollWidth <= el.clientWidth")
    for control in banner.get_by_role("button").all():
        _fits(page, control)

    banner.get_by_role("button", name="Customize").click()
    dialog = page.get_by_role("dialog", name="Privacy settings")
    expect(dialog.get_by_role("switch", name="Performance")).to_be_visible()
    assert dialog.evaluate("el => el.scrollWidth <= el.clientWidth")
    controls = dialog.locator("button:visible, input:visible").all()
    assert len(controls) >= 8
    for control in controls:
        _fits(page, control)
    page.screenshot(path=artifact("preferences-zoom-200.png"))


def _colours(locator: Locator) -> list[str]:
    colours: list[str] = locator.evaluate(
        "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
    )
    return colours


def _brightness(colour: str) -> float:
    red, green, blue = (int(part) for part in colour[colour.index("(") + 1 : -1].split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_dark_mode_follows_the_system(
    new_page: NewPage, platform: PlatformServer, service: str
) -> None:
    """With prefers-color-scheme: dark the banner and /privacy turn dark, text light."""
    light, dark = new_page(color_scheme="light"), new_page(color_scheme="dark")
    for page in (light, dark):
        open_platform(page, platform)
    light_colours = _colours(light.locator("#consentry .banner"))
    dark_colours = _colours(dark.locator("#consentry .banner"))
    assert light_colours != dark_colours
    assert _brightness(light_colours[0]) > 0.9 > 0.2 > _brightness(dark_colours[0])
    assert _brightness(dark_colours[1]) > 0.8
    dark.screenshot(path=artifact("banner-dark.png"))

    dark.goto(f"{service}/privacy#token={user_token('learner-dark-1')}")
    expect(dark.get_by_role("switch", name="Performance")).to_be_visible()
    page_colours = _colours(dark.locator("#consentry-privacy .page"))
    assert _brightness(page_colours[0]) < 0.2 < 0.8 < _brightness(page_colours[1])
    dark.screenshot(path=artifact("privacy-page-dark.png"), full_page=True)


def test_german_from_the_browser_and_an_explicit_choice_remembered(
    new_page: NewPage, platform: PlatformServer, service: str
) -> None:
    """A German browser reads German; choosing English overrides it, survives a reload, is sent."""
    page = new_page(locale="de-DE")
    open_platform(page, platform)
    banner = page.locator("#consentry .banner")
    expect(banner.get_by_role("heading")).to_have_text("Ihre Datenschutz-Einstellungen")
    expect(banner).to_have_attribute("lang", "de")
    for name in ("Alle akzeptieren", "Alle ablehnen", "Anpassen"):
        expect(banner.get_by_role("button", name=name)).to_be_visible()
    banner.get_by_role("button", name="Anpassen").click()
    dialog = page.get_by_role("dialog", name="Datenschutz-Einstellungen")
    expect(dialog.get_by_role("switch", name="Leistung")).not_to_be_checked()
    expect(dialog).to_contain_text("Wenn Sie es ausschalten:")
    page.keyboard.press("Escape")

    banner.get_by_role("button", name="English").click()
    expect(banner.get_by_role("heading")).to_have_text("Your privacy choices")
    page.reload()
    page.evaluate("window.consentReady")
    expect(banner.get_by_role("heading")).to_have_text("Your privacy choices")
    banner.get_by_role("button", name="Reject all").click()
    expect(banner).to_have_count(0)
    [record] = history(service, page.evaluate("Consentry.state().subject_id"))
    assert record["language"] == "en"


def test_the_platforms_language_setting(new_page: NewPage, platform: PlatformServer) -> None:
    """The learner's language from the platform beats the browser's."""
    page = new_page(locale="en-GB")
    open_platform(page, platform, language="de")
    expect(page.locator("#consentry .banner h2")).to_have_text("Ihre Datenschutz-Einstellungen")
