"""The preference center: toggles that persist, history, providers, and /privacy with a token."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import (
    NewPage,
    PlatformServer,
    artifact,
    history,
    open_platform,
    server_state,
)
from tests.helpers import ADMIN_KEY, admin, user_token


def test_toggle_persists_across_reloads_and_appears_in_history(
    page: Page, platform: PlatformServer, service: str
) -> None:
    """A switch saves at once, survives a reload, and shows in the server's and the UI's history."""
    open_platform(page, platform)
    subject = page.evaluate("Consentry.state().subject_id")
    page.get_by_role("button", name="Customize").click()
    dialog = page.get_by_role("dialog", name="Privacy settings")
    necessary = dialog.get_by_role("switch", name="Strictly necessary")
    expect(necessary).to_be_checked()
    expect(necessary).to_be_disabled()
    performance = dialog.get_by_role("switch", name="Performance")
    expect(performance).not_to_be_checked()
    # Headings in order: the dialog's title, then each category and each section under it.
    titles = [dialog.get_by_role("heading", level=level).all_inner_texts() for level in (2, 3)]
    assert titles == [
        ["Privacy settings"],
        [
            "Strictly necessary",
            "Performance",
            "Functional",
            "Personalisation",
            "Who receives your data now",
            "Your consent history",
            "Your data",
        ],
    ]
    # Each category says what it does, what switching it off means, and who gets its data.
    expect(dialog).to_contain_text("which courses are popular")
    expect(dialog).to_contain_text("If you switch it off: Your learning is unaffected")
    expect(dialog).to_contain_text("Shared with: Usage analytics")
    page.screenshot(path=artifact("preferences-dialog.png"))

    performance.click()
    expect(dialog.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    page.wait_for_function("window.ran.includes('analytics.js')")
    # Saved with the right source: the banner went away with the first recorded choice.
    expect(page.locator("#consentry .banner")).to_have_count(0)
    state = server_state(service, subject)
    assert state["categories"]["performance"] == {
        **state["categories"]["performance"],
        "granted": True,
        "source": "user",
    }
    [record] = history(service, subject)
    assert (record["source"], record["method"], record["changed"]) == (
        "preference_center",
        "custom",
        ["performance"],
    )
    receivers = dialog.locator("section ul.providers")
    expect(receivers).to_contain_text("Usage analytics")  # now among the receivers
    page.keyboard.press("Escape")

    page.reload()
    page.evaluate("window.consentReady")
    expect(page.locator("#consentry .banner")).to_have_count(0)
    page.get_by_role("button", name="Privacy settings").click()
    dialog = page.get_by_role("dialog", name="Privacy settings")
    expect(dialog.get_by_role("switch", name="Performance")).to_be_checked()
    expect(dialog.get_by_role("switch", name="Functional")).not_to_be_checked()
    entries = dialog.locator("ol.history li")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("via privacy settings, own choice")
    expect(entries.first.locator("strong")).to_have_text("Performance: On")

    dialog.get_by_role("switch", name="Performance").click()
    expect(entries).to_have_count(2)
    expect(entries.first.locator("strong")).to_have_text("Performance: Off")
    assert server_state(service, subject)["categories"]["performance"]["granted"] is False


def test_privacy_page_with_token_exports_and_erases(
    new_page: NewPage, service: str, tmp_path: Path
) -> None:
    """/privacy#token=: the token leaves the address bar, goes only in a header; export, erase."""
    learner = "learner-privacy-1"
    token = user_token(learner)
    page = new_page(accept_downloads=True)
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(f"{service}/privacy#token={token}")
    expect(page.get_by_role("heading", name="Privacy settings", level=1)).to_be_visible()
    assert page.url == f"{service}/privacy"
    api_calls = [r for r in requests if "/v1/subjects/" in r.url]
    assert api_calls
    assert all(token not in r.url for r in requests)
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in api_calls)
    assert all(f"/v1/subjects/{learner}/" in r.url for r in api_calls)

    page.get_by_role("switch", name="Functional").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    assert server_state(service, learner, **admin())["categories"]["functional"]["granted"]
    page.screenshot(path=artifact("privacy-page-light.png"), full_page=True)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    exported = json.loads(saved.read_text())
    assert exported["subject_id"] == learner
    assert exported["consent"]["categories"]["functional"]["granted"] is True
    assert download.value.suggested_filename.startswith("consentry-export-")

    # Asking first: Cancel changes nothing.
    page.get_by_role("button", name="Delete my data").click()
    confirm = page.get_by_role("alertdialog", name="Delete all your data?")
    expect(confirm).to_contain_text("within 30 days")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    assert httpx.get(f"{service}/v1/erasure-requests", headers=admin()).json()["items"] == []

    page.get_by_role("button", name="Delete my data").click()
    page.get_by_role("button", name="Yes, delete my data").click()
    expect(page.get_by_role("alert")).to_contain_text("your data is being deleted")
    [found] = httpx.get(
        f"{service}/v1/erasure-requests", params={"subject_id": learner}, headers=admin()
    ).json()["items"]
    assert found["reason"] == "subject_request"
    # Under its strict CSP the page loaded everything it needed: no violation, no error.
    assert failed == []
    assert problems == []
    # The service's worker erases at once; afterwards the page says so instead of failing.
    page.wait_for_function(
        f"""async () => (await fetch("/v1/erasure-requests/{found["id"]}",
            {{headers: {{Authorization: "Bearer {ADMIN_KEY}"}}}})).json()
            .then(r => r.status === "completed")""",
        polling=250,
    )
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("has been deleted")


def test_privacy_page_as_anonymous_visitor(page: Page, service: str) -> None:
    """/privacy without a token: the visitor's own choices, and no export or erase buttons."""
    page.goto(f"{service}/privacy")
    page.get_by_role("button", name="Accept all").click()
    expect(page.get_by_role("status").filter(has_text="Your choices were saved.")).to_be_visible()
    subject = page.evaluate("Consentry.state().subject_id")
    assert subject.startswith("anon:")
    [record] = history(service, subject)
    assert (record["source"], record["method"]) == ("preference_center", "accept_all")
    expect(page.get_by_role("button", name="Download my data")).to_have_count(0)
    expect(page.get_by_text("Sign in to the platform")).to_be_visible()


def test_privacy_page_with_an_expired_token(page: Page, service: str) -> None:
    """An expired token is refused by the service, and the page says what to do."""
    token = user_token("learner-expired-1", exp=int(time.time()) - 60)
    page.goto(f"{service}/privacy#token={token}")
    expect(page.get_by_role("alert")).to_contain_text("Your sign-in has expired")
    expect(page.get_by_role("switch")).to_have_count(0)
    assert page.url == f"{service}/privacy"


def test_a_providers_details_in_the_pages_language(
    new_page: NewPage, platform: PlatformServer, service: str
) -> None:
    """What a provider gets, where, under which safeguard, and its opt-out page, in German."""
    url = f"{service}/v1/providers/usage-analytics"
    original = httpx.get(url).json()
    kept = {k: v for k, v in original.items() if k not in ("created_at", "updated_at")}
    opt_out = "https://analytics.example.com/opt-out"
    changed = httpx.put(url, json={**kept, "opt_out_url": opt_out}, headers=admin())
    assert changed.status_code == 200, changed.text
    try:
        page = new_page(locale="de-DE")
        open_platform(page, platform)
        page.get_by_role("button", name="Anpassen").click()
        dialog = page.get_by_role("dialog", name="Datenschutz-Einstellungen")
        performance = dialog.locator("li.cat").nth(1)
        performance.get_by_text("Nutzungsanalyse").click()
        details = performance.locator("details[open]")
        expect(details).to_contain_text("Erhält: pseudonyme Kennung, Nutzungsstatistiken")
        expect(details).to_contain_text(
            "Verarbeitet in: Vereinigte Staaten, abgesichert durch Standardvertragsklauseln"
        )
        link = details.get_by_role("link", name="Beim Anbieter widersprechen")
        assert link.get_attribute("href") == opt_out
        assert link.get_attribute("rel") == "noopener noreferrer"
        # The same provider in English once the learner switches the language.
        dialog.get_by_role("button", name="English").click()
        expect(
            page.get_by_role("dialog", name="Privacy settings").locator("li.cat").nth(1)
        ).to_contain_text("Usage analytics")
    finally:
        httpx.put(url, json=kept, headers=admin()).raise_for_status()
