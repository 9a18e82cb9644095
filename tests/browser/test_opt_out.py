"""End to end, in Chromium: a gated script ran exactly when the service keeps its events.

In the EU nothing optional runs before a choice and nothing optional is kept. In California
(an opt-out region) consent.js records the defaults it applies as a notice before any script
runs, so the scripts that run are the ones whose events count; with Global Privacy Control the
signal wins, and the banner's "Do not sell or share" opts out for good.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage, PlatformServer, history, open_platform
from tests.helpers import admin, event

OPTIONAL = ("performance", "functional", "customization")


def _ran(page: Page) -> set[str]:
    """The optional categories whose inline test script ran (they run as they are inserted)."""
    return set(page.evaluate("window.ran")) & set(OPTIONAL)


def _accepted(service: str, subject: str) -> set[str]:
    """The optional categories whose event, happening now, the service keeps."""
    batch = [event(subject, category) for category in OPTIONAL]
    response = httpx.post(f"{service}/v1/events", json={"events": batch}, headers=admin())
    response.raise_for_status()
    results: list[dict[str, Any]] = response.json()["results"]
    return {c for c, r in zip(OPTIONAL, results, strict=True) if r["status"] == "accepted"}


@pytest.mark.parametrize(
    ("region", "gpc", "expected", "second_button"),
    [
        ("DE", False, set(), "Reject all"),
        ("US-CA", False, set(OPTIONAL), "Do not sell or share my personal information"),
        ("US-CA", True, {"functional"}, "Do not sell or share my personal information"),
    ],
    ids=["EU", "California", "California with GPC"],
)
def test_a_gated_script_ran_if_and_only_if_its_events_are_accepted(
    new_page: NewPage,
    platform: PlatformServer,
    service: str,
    region: str,
    gpc: bool,
    expected: set[str],
    second_button: str,
) -> None:
    page = new_page(extra_http_headers={"Sec-GPC": "1"} if gpc else {})
    state = open_platform(page, platform, region=region)
    subject = state["subject_id"]
    assert _ran(page) == expected
    assert _accepted(service, subject) == expected

    records = history(service, subject)
    if region == "DE":
        assert records == []  # nothing applies that a notice would need to record
    else:
        [notice] = records
        assert (notice["source"], notice["method"], notice["gpc"]) == ("notice", None, gpc)
    # A notice is not a choice: the banner still asks, with the choices of the region's law.
    banner = page.locator("#consentry .banner")
    expect(banner.get_by_role("button", name="Accept all")).to_be_visible()
    expect(banner.get_by_role("button", name=second_button)).to_be_visible()

    # The notice is recorded once: a reload with the same defaults records nothing more.
    page.reload()
    page.evaluate("window.consentReady")
    assert _ran(page) == expected
    assert len(history(service, subject)) == len(records)


def test_do_not_sell_or_share_opts_out_and_the_gate_follows(
    page: Page, platform: PlatformServer, service: str
) -> None:
    state = open_platform(page, platform, region="US-CA")
    subject = state["subject_id"]
    banner = page.locator("#consentry .banner")
    expect(banner).to_contain_text("Unless you opt out")
    banner.get_by_role("button", name="Do not sell or share my personal information").click()
    expect(banner).to_have_count(0)
    # What Global Privacy Control would turn off is off, as the learner's own choice.
    [choice, _notice] = history(service, subject)
    assert (choice["source"], choice["method"]) == ("banner", "custom")
    assert choice["categories"] == {
        "necessary": True,
        "performance": False,
        "functional": True,
        "customization": False,
    }
    assert _accepted(service, subject) == {"functional"}
    # The scripts that already ran cannot be unloaded; from the next page on only those run.
    page.reload()
    page.evaluate("window.consentReady")
    expect(banner).to_have_count(0)
    assert _ran(page) == {"functional"}


def test_when_the_notice_cannot_be_recorded_nothing_optional_runs(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """Fail closed: a script whose events the service would refuse does not run."""
    page.route(
        "**/v1/subjects/*/consent",
        lambda route: (
            route.fulfill(status=503, body="")
            if route.request.method == "PUT"
            else route.continue_()
        ),
    )
    state = open_platform(page, platform, region="US-CA")
    assert state["regime"] == "opt_out"
    assert not any(c["granted"] for name, c in state["categories"].items() if name != "necessary")
    assert _ran(page) == set()
    assert _accepted(service, state["subject_id"]) == set()
    assert page.evaluate("window.gtagCalls.at(-1)[2].analytics_storage") == "denied"
    expect(page.locator("#consentry .banner")).to_be_visible()
