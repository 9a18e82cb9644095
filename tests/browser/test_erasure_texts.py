"""What /privacy tells a learner about the export and the erasure, in English and German: what
is exported and deleted, by whom, the grace period and how to cancel; and afterwards, what the
consent service deleted at once and where each of the platform's services stands."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage
from tests.helpers import ADMIN_KEY, JWT_SECRET, admin, choice, user_token
from tests.processes import environment, serving
from tests.systems.receiver import Receiver, receiving


def _service(tmp_path: Path, **settings: str) -> Iterator[str]:
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'consentry.db'}",
        CONSENTRY_JWT_SECRET=JWT_SECRET,
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
        CONSENTRY_WORKER_INTERVAL_SECONDS="0.2",
        CONSENTRY_WEBHOOK_POLL_SECONDS="0.2",
        **settings,
    )
    with serving(env, tmp_path / "serve.log") as base:
        yield base


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as live:
        yield live


@pytest.fixture
def at_once(tmp_path: Path) -> Iterator[str]:
    """A service that erases at once."""
    yield from _service(tmp_path)


@pytest.fixture
def with_grace(tmp_path: Path) -> Iterator[str]:
    """A service that waits three days before it erases."""
    yield from _service(tmp_path, CONSENTRY_ERASURE_GRACE_DAYS="3")


def _open(page: Page, service: str, learner: str) -> None:
    put = httpx.put(
        f"{service}/v1/subjects/{learner}/consent", json=choice(True, True), headers=admin()
    )
    assert put.status_code == 200
    page.goto(f"{service}/privacy#token={user_token(learner)}")
    expect(
        page.get_by_role("switch", name="Functional").or_(
            page.get_by_role("switch", name="Funktional")
        )
    ).to_be_visible()


def _request(service: str, learner: str) -> dict[str, Any]:
    [found] = httpx.get(
        f"{service}/v1/erasure-requests", params={"subject_id": learner}, headers=admin()
    ).json()["items"]
    return dict(found)


def _wait(service: str, learner: str, ready: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = _request(service, learner)
        if ready(found):
            return found
        time.sleep(0.1)
    pytest.fail(f"the request never got there: {_request(service, learner)}")


def _register(service: str, system_id: str, url: str, erasure: str) -> None:
    body = {"id": system_id, "name": system_id, "webhook_url": url, "erasure": erasure}
    assert httpx.post(f"{service}/v1/systems", json=body, headers=admin()).status_code == 201


def test_the_learner_is_told_what_is_deleted_by_whom_and_then_where_it_stands(
    new_page: NewPage, at_once: str, receiver: Receiver
) -> None:
    service, learner = at_once, "learner-texts-1"
    _register(service, "course-progress", f"{receiver.url}/progress", "confirm")
    _register(service, "support-desk", f"{receiver.url}/support", "notify")
    page = new_page()
    _open(page, service, learner)
    # What the download holds, and what it does not.
    scope = page.locator("[data-export-scope]")
    expect(scope).to_contain_text("what the consent service itself keeps")
    expect(scope).to_contain_text("your current choices and every change to them")
    expect(scope).to_contain_text("ask the platform's privacy team for a copy of those")

    page.get_by_role("button", name="Delete my data").click()
    dialog = page.get_by_role("alertdialog", name="Delete all your data?")
    expect(dialog).to_contain_text("The consent service deletes at once your current choices")
    expect(dialog).to_contain_text("for 90 days as legal proof, without your name")
    expect(dialog).to_contain_text("Every other service of the platform that keeps data about you")
    expect(dialog).to_contain_text("confirms when it has. Everything is deleted within 30 days.")
    expect(dialog).to_contain_text("Deletion starts at once and cannot be undone.")
    page.get_by_role("button", name="Yes, delete my data").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "the platform's other services confirm theirs within 30 days"
    )

    found = _wait(
        service,
        learner,
        lambda r: {s["id"]: s["status"] for s in r["systems"]}.get("support-desk") == "notified",
    )
    assert found["status"] == "awaiting_systems"
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("has been deleted")
    report = page.locator("[data-erasure-report]")
    expect(report.get_by_role("heading", name="What was deleted")).to_be_visible()
    expect(report).to_contain_text("The consent service deleted its part on")
    expect(report).to_contain_text("Entries of your choice history: 1")
    expect(report).to_contain_text("without your name as legal proof until")
    expect(report.locator('[data-system="support-desk"]')).to_have_text(
        "support-desk: told to delete"
    )
    expect(report.locator('[data-system="course-progress"]')).to_have_text(
        "course-progress: deleting, not confirmed yet"
    )
    expect(report).to_contain_text("Everything is deleted by")

    confirmed = httpx.post(
        f"{service}/v1/erasure-requests/{found['id']}/confirmations",
        json={"system_id": "course-progress", "note": "Removed from the progress store."},
        headers=admin(),
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "completed"
    page.reload()
    expect(report.locator('[data-system="course-progress"]')).to_contain_text(
        "deleted, confirmed on"
    )
    expect(report).to_contain_text("every service has deleted your data")

    german = new_page(locale="de-DE")
    german.goto(f"{service}/privacy#token={user_token(learner)}")
    expect(german.get_by_role("alert")).to_contain_text("wurden gelöscht")
    report = german.locator("[data-erasure-report]")
    expect(report.get_by_role("heading", name="Was gelöscht wurde")).to_be_visible()
    expect(report).to_contain_text("Der Einwilligungsdienst hat seinen Teil am")
    expect(report).to_contain_text("Einträge Ihres Einwilligungsverlaufs: 1")
    expect(report.locator('[data-system="support-desk"]')).to_have_text(
        "support-desk: zum Löschen aufgefordert"
    )
    expect(report).to_contain_text("Jeder Dienst hat Ihre Daten gelöscht")


def test_with_a_grace_period_the_learner_is_told_and_can_cancel_in_german_too(
    new_page: NewPage, with_grace: str
) -> None:
    service, learner = with_grace, "learner-texts-2"
    page = new_page(locale="de-DE")
    _open(page, service, learner)
    expect(page.locator("[data-export-scope]")).to_contain_text(
        "was der Einwilligungsdienst selbst speichert"
    )
    page.get_by_role("button", name="Meine Daten löschen").click()
    dialog = page.get_by_role("alertdialog", name="Alle Ihre Daten löschen?")
    expect(dialog).to_contain_text("Der Einwilligungsdienst löscht sofort Ihre aktuelle Auswahl")
    expect(dialog).to_contain_text("wird ebenfalls zum Löschen aufgefordert")
    expect(dialog).to_contain_text("innerhalb von 30 Tagen gelöscht")
    expect(dialog).to_contain_text(
        "In den ersten 3 Tagen wird nichts gelöscht: Bis dahin können Sie hier abbrechen"
    )
    page.get_by_role("button", name="Ja, meine Daten löschen").click()
    expect(page.get_by_text("Ihre Daten werden ab")).to_be_visible()
    assert _request(service, learner)["status"] == "pending"

    # In English, after a reload: the waiting request and the way to cancel it are shown.
    english = new_page()
    english.goto(f"{service}/privacy#token={user_token(learner)}")
    expect(english.get_by_text("Your data will be deleted from")).to_be_visible()
    expect(english.get_by_role("button", name="Delete my data")).to_be_hidden()
    english.get_by_role("button", name="Cancel the deletion").click()
    expect(english.get_by_text("The deletion was cancelled.")).to_be_visible()
    assert _request_status(service, learner) == "cancelled"
    consent = httpx.get(f"{service}/v1/subjects/{learner}/consent", headers=admin())
    assert consent.status_code == 200  # the account is kept


def _request_status(service: str, learner: str) -> str:
    items = httpx.get(
        f"{service}/v1/erasure-requests", params={"subject_id": learner}, headers=admin()
    ).json()["items"]
    return str(items[0]["status"])
