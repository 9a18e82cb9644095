"""The banner on a first visit: what runs before a choice, reject, accept, reload, GPC, failure."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import (
    NewPage,
    PlatformServer,
    artifact,
    history,
    open_platform,
    server_state,
)
from tests.helpers import OLD_POLICY_VERSION, choice
from tests.processes import free_port

DENIED_DEFAULT = {
    "ad_storage": "denied",
    "ad_user_data": "denied",
    "ad_personalization": "denied",
    "analytics_storage": "denied",
    "functionality_storage": "denied",
    "personalization_storage": "denied",
    "security_storage": "granted",
    "wait_for_update": 500,
}


# Every gated script of the test page; the module one proves `data-type="module"` is kept.
ALL_GATED = {"performance", "analytics.js", "functional", "module:object", "customization"}


def _subject(page: Page) -> str:
    subject: str = page.evaluate("Consentry.state().subject_id")
    return subject


def _ran(page: Page) -> set[str]:
    return set(page.evaluate("window.ran"))


def _granted(state: dict[str, Any]) -> dict[str, bool]:
    return {name: c["granted"] for name, c in state["categories"].items()}


def test_first_visit_shows_banner_and_runs_nothing_optional(
    page: Page, platform: PlatformServer
) -> None:
    """A first visit: banner shown, only the page's own script ran, analytics.js never fetched."""
    before = len(platform.requests)
    state = open_platform(page, platform)
    banner = page.locator("#consentry .banner")
    expect(banner).to_be_visible()
    expect(banner.get_by_role("heading", name="Your privacy choices")).to_be_visible()
    for name in ("Accept all", "Reject all", "Customize"):
        expect(banner.get_by_role("button", name=name)).to_be_visible()
    assert state["revision"] == 0
    assert page.evaluate("window.ran") == ["page"]
    assert "/analytics.js" not in platform.requests[before:]
    assert page.evaluate("['necessary', 'performance'].map(Consentry.allowed)") == [True, False]
    # The anonymous id lives in a first-party cookie of the platform's origin.
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["consentry_id"]["value"] == _subject(page).replace(":", "%3A")
    assert cookies["consentry_id"]["domain"] == "localhost"
    assert _subject(page).startswith("anon:")
    page.screenshot(path=artifact("banner.png"))


@pytest.mark.parametrize("locale", ["en-US", "de-DE"])
def test_reject_and_accept_are_equally_prominent(
    new_page: NewPage, platform: PlatformServer, locale: str
) -> None:
    """Reject all looks exactly like Accept all, in either language: same size, colours, weight."""
    page = new_page(locale=locale)
    open_platform(page, platform)
    looks = [
        page.locator(f"#consentry .banner [data-action={action}]").evaluate(
            """el => { const s = getComputedStyle(el), r = el.getBoundingClientRect();
                return [Math.round(r.width), Math.round(r.height), s.backgroundColor, s.color,
                        s.fontSize, s.fontWeight, s.borderColor]; }"""
        )
        for action in ("accept_all", "reject_all")
    ]
    assert looks[0] == looks[1]


def test_reject_all_runs_nothing_and_the_server_records_denial(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """Reject all: banner gone, no optional script, denied on the server, gtag told so."""
    before = len(platform.requests)
    open_platform(page, platform)
    page.get_by_role("button", name="Reject all").click()
    expect(page.locator("#consentry .banner")).to_have_count(0)
    state = server_state(service, _subject(page))
    assert _granted(state) == {
        "necessary": True,
        "performance": False,
        "functional": False,
        "customization": False,
    }
    assert {c["source"] for name, c in state["categories"].items() if name != "necessary"} == {
        "user"
    }
    [record] = history(service, _subject(page))
    assert (record["source"], record["method"], record["language"]) == (
        "banner",
        "reject_all",
        "en",
    )
    assert page.evaluate("window.ran") == ["page"]
    assert "/analytics.js" not in platform.requests[before:]
    calls = page.evaluate("window.gtagCalls")
    assert calls[0] == ["consent", "default", DENIED_DEFAULT]
    assert calls[-1][:2] == ["consent", "update"]
    assert calls[-1][2]["analytics_storage"] == "denied"
    assert page.evaluate("window.changes.at(-1).revision") == 1


def test_accept_all_runs_the_gated_scripts(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """Accept all: every gated script runs once, granted on the server, gtag updated."""
    open_platform(page, platform)
    assert _ran(page) == {"page"}
    page.get_by_role("button", name="Accept all").click()
    expect(page.locator("#consentry .banner")).to_have_count(0)
    page.wait_for_function("window.ran.length === 6")
    assert sorted(page.evaluate("window.ran")) == sorted(["page", *ALL_GATED])
    state = server_state(service, _subject(page))
    assert all(_granted(state).values())
    [record] = history(service, _subject(page))
    assert (record["source"], record["method"]) == ("banner", "accept_all")
    update = page.evaluate("window.gtagCalls.at(-1)")
    assert update == ["consent", "update", state["consent_mode"]]
    assert update[2]["analytics_storage"] == "granted"
    assert update[2]["ad_storage"] == "denied"


def test_reload_shows_no_banner_and_takes_state_from_the_server(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """After a choice, a reload asks the server: a change made elsewhere shows at once."""
    open_platform(page, platform)
    page.get_by_role("button", name="Reject all").click()
    expect(page.locator("#consentry .banner")).to_have_count(0)
    subject = _subject(page)
    # The same visitor allows performance from another device: the server is the truth.
    changed = httpx.put(
        f"{service}/v1/subjects/{subject}/consent",
        json=choice(performance=True, source="api"),
    )
    assert changed.status_code == 200
    page.reload()
    state = page.evaluate("window.consentReady")
    assert state["revision"] == 2
    assert _subject(page) == subject
    expect(page.locator("#consentry .banner")).to_have_count(0)
    page.wait_for_function("window.ran.includes('analytics.js')")
    assert _ran(page) == {"page", "performance", "analytics.js"}


def test_a_stale_choice_shows_the_banner_again(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """A choice made under an older policy is asked again, and the new answer clears it."""
    open_platform(page, platform)
    subject = _subject(page)
    old = choice(performance=True, policy_version=OLD_POLICY_VERSION)
    assert httpx.put(f"{service}/v1/subjects/{subject}/consent", json=old).status_code == 200
    page.reload()
    assert page.evaluate("window.consentReady")["stale"] is True
    banner = page.locator("#consentry .banner")
    expect(banner).to_contain_text("Our policy has changed")
    banner.get_by_role("button", name="Reject all").click()
    expect(banner).to_have_count(0)
    assert server_state(service, subject)["stale"] is False


def test_gpc_signal_gets_gpc_defaults(
    new_page: NewPage, platform: PlatformServer, service: str
) -> None:
    """In an opt-out region, a browser sending Sec-GPC: 1 gets performance and customization off."""
    plain = new_page()
    open_platform(plain, platform, region="US-CA")
    plain.wait_for_function("window.ran.length === 6")
    assert _ran(plain) == {"page", *ALL_GATED}

    page = new_page(extra_http_headers={"Sec-GPC": "1"})
    state = open_platform(page, platform, region="US-CA")
    assert state["regime"] == "opt_out"
    sources = {name: (c["granted"], c["source"]) for name, c in state["categories"].items()}
    assert sources["performance"] == (False, "gpc")
    assert sources["customization"] == (False, "gpc")
    assert sources["functional"] == (True, "default")
    page.wait_for_function("window.ran.includes('module:object')")
    assert _ran(page) == {"page", "functional", "module:object"}
    banner = page.locator("#consentry .banner")
    expect(banner).to_contain_text("Global Privacy Control")
    # An explicit choice wins over the signal, and the record keeps that the browser sent it.
    banner.get_by_role("button", name="Accept all").click()
    page.wait_for_function("window.ran.includes('analytics.js')")
    # Before it, the defaults the signal shaped were recorded as a notice.
    record, noticed = history(service, _subject(page))
    assert (record["gpc"], record["method"], record["region"]) == (True, "accept_all", "US-CA")
    assert (noticed["source"], noticed["gpc"], noticed["categories"]["performance"]) == (
        "notice",
        True,
        False,
    )


def test_unreachable_service_fails_closed(new_page: NewPage, platform: PlatformServer) -> None:
    """No service: no optional script, no banner, gtag denied by default, the page still works."""
    page = new_page()
    state = open_platform(page, platform, api=f"http://127.0.0.1:{free_port()}/")
    assert state is None
    assert page.evaluate("window.ran") == ["page"]
    expect(page.locator("#consentry .banner")).to_have_count(0)
    assert page.evaluate("window.gtagCalls") == [["consent", "default", DENIED_DEFAULT]]
    assert page.evaluate("['performance', 'functional'].map(Consentry.allowed)") == [False, False]
    page.get_by_role("button", name="Privacy settings").click()
    expect(page.get_by_role("dialog")).to_contain_text("cannot be loaded right now")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_nothing_optional_runs_before_the_consent_is_read(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """A returning visitor who accepted all: the gated scripts wait for the service's answer."""
    open_platform(page, platform)
    page.get_by_role("button", name="Accept all").click()
    page.wait_for_function("window.ran.includes('analytics.js')")
    held: list[Route] = []
    page.route("**/v1/subjects/*/consent", lambda route: held.append(route))
    # The reload returns after the load event: every script of the page has had its turn. The
    # held request reaches this side as an event of its own, handled while Playwright waits.
    page.reload()
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(25)
    assert len(held) == 1
    assert page.evaluate("window.ran") == ["page"]
    assert page.evaluate("Consentry.allowed('performance')") is False
    assert page.evaluate("window.gtagCalls") == [["consent", "default", DENIED_DEFAULT]]
    held[0].continue_()
    page.wait_for_function("window.ran.length === 6")
    assert _ran(page) == {"page", *ALL_GATED}
