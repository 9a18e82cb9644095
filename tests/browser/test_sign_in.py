"""Signing in after answering the banner: the choice follows once, and never to the next learner."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import jwt
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import PlatformServer, history, open_platform, server_state
from tests.helpers import bearer, user_token

ANON = r"^anon:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


def _cookie(page: Page, name: str) -> str | None:
    for found in page.context.cookies():
        if found["name"] == name:
            return unquote(found["value"])
    return None


def _sign_in(page: Page, platform: PlatformServer, learner: str) -> Any:
    """Open the platform as the signed-in learner, as its pages pass the learner to consent.js."""
    return open_platform(page, platform, subject=learner, token=user_token(learner))


def _links(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.url.endswith("/consent/link")]


def test_a_banner_choice_follows_the_visitor_into_their_account(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """Answer anonymously, sign in: no banner, the choice is the learner's; then a second
    learner on the same browser inherits nothing."""
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    open_platform(page, platform)
    visitor = _cookie(page, "consentry_id")
    assert visitor is not None and visitor.startswith("anon:")
    page.get_by_role("button", name="Reject all").click()
    expect(page.locator("#consentry .banner")).to_have_count(0)
    [answered] = history(service, visitor)

    learner = "learner-signin-1"
    state = _sign_in(page, platform, learner)
    expect(page.locator("#consentry .banner")).to_have_count(0)
    assert state["subject_id"] == learner and state["revision"] == 1
    assert state["stale"] is False
    assert {name: c["granted"] for name, c in state["categories"].items()} == {
        "necessary": True,
        "performance": False,
        "functional": False,
        "customization": False,
    }
    auth = bearer(user_token(learner))
    assert server_state(service, learner, **auth) == state
    [record] = history(service, learner, **auth)
    assert (record["method"], record["actor"], record["source"]) == ("linked", "subject", "banner")
    assert record["linked_from"] == answered["id"]
    [call] = _links(requests)
    scheme, _, token = call.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == learner
    assert call.post_data_json == {"anonymous_id": visitor}
    # The browser goes on under a fresh anonymous id; the used one is gone from it.
    fresh = _cookie(page, "consentry_id")
    assert fresh is not None and fresh != visitor
    assert page.evaluate(f"/{ANON}/.test({fresh!r})")

    # More pages of the same learner link nothing more.
    _sign_in(page, platform, learner)
    assert len(_links(requests)) == 1 and _cookie(page, "consentry_id") == fresh

    # The learner signs out; the next one signs in on the same computer.
    other = "learner-signin-2"
    state = _sign_in(page, platform, other)
    assert state["revision"] == 0
    expect(page.locator("#consentry .banner")).to_be_visible()
    assert history(service, other, **bearer(user_token(other))) == []
    assert len(_links(requests)) == 1  # the fresh id was never offered to anyone


def test_an_anonymous_visit_between_sign_ins_links_nothing_that_was_not_chosen(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """Signed out, a page is seen but the banner is left alone: the next sign-in carries nothing,
    and the id it used is replaced all the same."""
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    open_platform(page, platform)
    page.get_by_role("button", name="Accept all").click()
    expect(page.locator("#consentry .banner")).to_have_count(0)
    _sign_in(page, platform, "learner-signin-3")
    after_first = _cookie(page, "consentry_id")

    open_platform(page, platform)  # signed out: the banner for a visitor who never chose
    expect(page.locator("#consentry .banner")).to_be_visible()
    assert _cookie(page, "consentry_id") == after_first

    state = _sign_in(page, platform, "learner-signin-4")
    assert state["revision"] == 0
    expect(page.locator("#consentry .banner")).to_be_visible()
    assert [r.post_data_json["anonymous_id"] for r in _links(requests)][-1] == after_first
    assert _cookie(page, "consentry_id") not in (None, after_first)
