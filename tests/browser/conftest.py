"""Browser tests: Debian's chromium driven by Playwright against a real `consentry serve`.

The platform's test page is served from a second local server on another origin (`localhost`,
while the service is `127.0.0.1`), as consent.js is used in production: cross-origin, allowed
by `CONSENTRY_CORS_ORIGINS`. Without chromium the suite is skipped, except with `CI=true`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.platform_server import PlatformServer, platform_origin, start_platform
from tests.helpers import ADMIN_KEY, JWT_SECRET
from tests.processes import environment, serving

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots for people to look at, kept out of git.
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


@pytest.fixture(scope="package")
def platform() -> Iterator[PlatformServer]:
    """The platform's own web server, on an origin of its own."""
    server = start_platform()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="package")
def service(platform: PlatformServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `consentry serve` on SQLite that admits the platform's origin; yields its base URL."""
    folder = tmp_path_factory.mktemp("browser")
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'consentry.db'}",
        CONSENTRY_CORS_ORIGINS=platform_origin(platform),
        CONSENTRY_JWT_SECRET=JWT_SECRET,
        CONSENTRY_ADMIN_KEY=ADMIN_KEY,
        CONSENTRY_POLICY_URL=f"{platform_origin(platform)}/policy.html",
        CONSENTRY_PLATFORM_URL=f"{platform_origin(platform)}/",
    )
    with serving(env, folder / "serve.log") as base:
        platform.service = base + "/"
        yield base


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless chromium for all browser tests.

    Package-scoped, not session-scoped: Playwright's sync API keeps an event loop running in
    this thread while it is open, and the other tests' `asyncio.run()` would refuse to start.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI=true: the browser tests are required")
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


NewPage = Callable[..., Page]


@pytest.fixture
def new_page(browser: Browser, service: str) -> Iterator[NewPage]:
    """Pages in fresh contexts (no cookies), each with the given context options."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Page:
        options.setdefault("locale", "en-US")
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: NewPage) -> Page:
    """A page in a fresh English-speaking context."""
    return new_page()


def open_platform(page: Page, platform: PlatformServer, **query: str) -> Any:
    """Open the platform's test page and wait until consent.js has read the consent."""
    suffix = f"?{urlencode(query)}" if query else ""
    page.goto(f"{platform_origin(platform)}/{suffix}")
    return page.evaluate("window.consentReady")


def server_state(service: str, subject_id: str, **headers: str) -> dict[str, Any]:
    """The subject's consent as the service answers it, outside the browser."""
    response = httpx.get(f"{service}/v1/subjects/{subject_id}/consent", headers=headers)
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


def artifact(name: str) -> Path:
    """Where a screenshot goes."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


# The element that has focus, looked for through shadow roots, with its focus outline.
FOCUSED = """() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  const style = getComputedStyle(el);
  return {
    tag: el.tagName.toLowerCase(), text: (el.innerText || "").trim(),
    action: el.dataset.action || null, category: el.dataset.category || null,
    checked: el.checked === undefined ? null : el.checked,
    outline: style.outlineStyle, outline_width: parseFloat(style.outlineWidth),
  };
}"""


def focused(page: Page) -> dict[str, Any]:
    """What has the keyboard's focus now."""
    found: dict[str, Any] = page.evaluate(FOCUSED)
    return found


def history(service: str, subject_id: str, **headers: str) -> list[dict[str, Any]]:
    """The subject's consent history, newest first, as the service answers it."""
    response = httpx.get(f"{service}/v1/subjects/{subject_id}/consent/history", headers=headers)
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items
