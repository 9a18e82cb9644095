"""Connections in the browser: /privacy approves and revokes, and requestConnection asks."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage, PlatformServer, artifact, focused
from tests.browser.platform_server import platform_origin
from tests.helpers import admin, user_token

PROVIDER = {
    "id": "drive-company",
    "name": "Drive Company",
    "kind": "technology",
    "purpose": "Stores the files learners keep in their own drive.",
    "data_shared": ["assignments"],
    "category": "functional",
    "countries": ["US"],
}


def _integration(integration_id: str, name: str, default: str, german: str) -> dict[str, Any]:
    return {
        "id": integration_id,
        "name": name,
        "kind": "cloud_storage" if default == "ask" else "school_roster",
        "provider_id": PROVIDER["id"],
        "purpose": f"{name} keeps your assignments where you want them.",
        "data_shared": ["assignments", "course_names"],
        "scopes": [
            {"id": "files.write", "description": "Save your handed-in work in your drive."},
            {"id": "profile.read", "description": "Read the name of your drive account."},
        ],
        "default": default,
        "translations": {
            "de": {"name": german, "scopes": {"files.write": "Ihre Arbeiten ablegen."}}
        },
    }


def _catalogue(service: str) -> None:
    """The provider and two integrations, once per service."""
    if httpx.get(f"{service}/v1/integrations/cloud-drive").status_code == 200:
        return
    httpx.post(f"{service}/v1/providers", json=PROVIDER, headers=admin()).raise_for_status()
    for body in (
        _integration("cloud-drive", "Cloud drive", "ask", "Cloud-Speicher"),
        _integration("school-roster", "School roster", "inform", "Schulliste"),
    ):
        httpx.post(f"{service}/v1/integrations", json=body, headers=admin()).raise_for_status()


def _ask(service: str, learner: str, integration_id: str) -> None:
    url = f"{service}/v1/subjects/{learner}/integrations/{integration_id}/requests"
    httpx.post(url, json={"scopes": ["files.write"]}, headers=admin()).raise_for_status()


def _connection(service: str, learner: str, integration_id: str) -> dict[str, Any]:
    url = f"{service}/v1/subjects/{learner}/integrations/{integration_id}"
    found: dict[str, Any] = httpx.get(url, headers=admin()).json()
    return found


def test_privacy_page_approves_and_revokes_a_connection(page: Page, service: str) -> None:
    """Pending first, each with what it shares and why; Approve, then Revoke by keyboard."""
    learner = "learner-connections-1"
    _catalogue(service)
    _ask(service, learner, "school-roster")
    _ask(service, learner, "cloud-drive")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(f"{service}/privacy#token={user_token(learner)}")
    section = page.get_by_role("region", name="Connections")
    cards = section.get_by_role("listitem").filter(has=page.get_by_role("heading"))
    expect(cards).to_have_count(2)
    # The request waiting for an answer comes first, though the list is ordered by id.
    expect(cards.first.get_by_role("heading")).to_have_text("Cloud drive")
    drive = cards.first
    expect(drive).to_contain_text("Status: waiting for your answer")
    expect(drive).to_contain_text("Why: Cloud drive keeps your assignments where you want them.")
    expect(drive).to_contain_text("What it shares: assignments, course_names")
    expect(drive).to_contain_text("Who receives it: Drive Company")
    expect(drive).to_contain_text("Save your handed-in work in your drive.")
    expect(cards.nth(1)).to_contain_text("connected by your school until you decline")
    approve = drive.get_by_role("button", name="Approve")
    decline = drive.get_by_role("button", name="Decline")
    # Equal weight: the same look and size for both answers.
    look = "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color, e.className]"
    assert approve.evaluate(look) == decline.evaluate(look)
    page.screenshot(path=artifact("privacy-connections.png"), full_page=True)

    approve.click()
    expect(section.get_by_role("status").filter(has_text="Cloud drive: approved.")).to_be_visible()
    found = _connection(service, learner, "cloud-drive")
    assert (found["status"], found["scopes"], found["source"]) == (
        "approved",
        ["files.write"],
        "learner",
    )
    # Focus stays on the card that changed: its one button now revokes, and Enter does so.
    assert focused(page)["action"] == "revoke"
    page.keyboard.press("Enter")
    expect(section.get_by_role("status").filter(has_text="Cloud drive: revoked.")).to_be_visible()
    assert _connection(service, learner, "cloud-drive")["status"] == "revoked"
    history = httpx.get(
        f"{service}/v1/subjects/{learner}/integrations/history", headers=admin()
    ).json()["items"]
    assert [(r["integration_id"], r["status"]) for r in history] == [
        ("cloud-drive", "revoked"),
        ("cloud-drive", "approved"),
        ("cloud-drive", "pending"),
        ("school-roster", "informed"),
    ]
    # The school's connection is declined from the same list.
    cards.filter(has_text="School roster").get_by_role("button", name="Decline").click()
    expect(
        section.get_by_role("status").filter(has_text="School roster: declined.")
    ).to_be_visible()
    assert _connection(service, learner, "school-roster")["status"] == "declined"
    assert problems == []


def test_privacy_page_connections_in_german(new_page: NewPage, service: str) -> None:
    learner = "learner-connections-de"
    _catalogue(service)
    _ask(service, learner, "cloud-drive")
    page = new_page(locale="de-DE")
    page.goto(f"{service}/privacy#token={user_token(learner)}")
    section = page.get_by_role("region", name="Verbindungen")
    expect(section.get_by_role("heading", name="Cloud-Speicher")).to_be_visible()
    expect(section).to_contain_text("Status: wartet auf Ihre Antwort")
    expect(section).to_contain_text("Ihre Arbeiten ablegen.")
    section.get_by_role("button", name="Ablehnen").click()
    expect(section.get_by_role("status").filter(has_text="abgelehnt")).to_be_visible()
    assert _connection(service, learner, "cloud-drive")["status"] == "declined"


def _open_connect(page: Page, platform: PlatformServer, learner: str, **query: str) -> None:
    params = urlencode({"token": user_token(learner), "subject": learner, **query})
    page.goto(f"{platform_origin(platform)}/connect.html?{params}")
    page.evaluate("window.consentReady")


def test_request_connection_asks_on_the_platforms_page(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """The dialog says what is shared and why; Escape answers nothing, Approve approves."""
    learner = "learner-connections-2"
    _catalogue(service)
    _open_connect(page, platform, learner)
    opener = page.get_by_role("button", name="Save my work to my drive")
    opener.click()
    dialog = page.get_by_role("dialog", name="Connect Cloud drive?")
    expect(dialog).to_contain_text("Why: Cloud drive keeps your assignments where you want them.")
    expect(dialog).to_contain_text("Who receives it: Drive Company")
    expect(dialog).to_contain_text("Save your handed-in work in your drive.")
    expect(dialog).not_to_contain_text("Read the name of your drive account.")  # not asked for
    # Neither answer is chosen in advance: the dialog itself has the focus.
    assert focused(page)["action"] is None
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(opener).to_be_focused()
    # The answer reaches the page's handler a turn after the dialog has closed.
    page.wait_for_function("window.answers.length === 1")
    assert page.evaluate("window.answers") == [{"decision": None, "status": None, "scopes": []}]
    assert _connection(service, learner, "cloud-drive")["status"] == "none"

    opener.click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    assert focused(page)["action"] == "approve"
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    page.wait_for_function("window.answers.length === 2")
    assert page.evaluate("window.answers[1]") == {
        "decision": "approve",
        "status": "approved",
        "scopes": ["files.write"],
    }
    found = _connection(service, learner, "cloud-drive")
    assert (found["status"], found["source"]) == ("approved", "learner")


def test_request_connection_in_german_can_decline(
    new_page: NewPage, platform: PlatformServer, service: str
) -> None:
    learner = "learner-connections-3"
    _catalogue(service)
    page = new_page(locale="de-DE")
    _open_connect(page, platform, learner)
    page.get_by_role("button", name="Save my work to my drive").click()
    dialog = page.get_by_role("dialog", name="Cloud-Speicher verbinden?")
    expect(dialog).to_contain_text("Ihre Arbeiten ablegen.")
    dialog.get_by_role("button", name="Ablehnen").click()
    page.wait_for_function("window.answers.length === 1")
    assert page.evaluate("window.answers[0].decision") == "decline"
    assert _connection(service, learner, "cloud-drive")["status"] == "declined"
