"""The API docs pages render in a browser from the service's own files, and ask no one else."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, Route, expect

from tests.browser.conftest import NewPage, artifact

# Every Content-Security-Policy violation of the page, as "directive blocked-uri".
_RECORD_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def _open_recorded(page: Page, url: str) -> list[str]:
    """Open `url`, refusing and recording every request that leaves its origin."""
    origin = urlsplit(url)[:2]
    foreign: list[str] = []

    def local(address: str) -> bool:
        return urlsplit(address)[:2] == origin or address.startswith(("data:", "blob:"))

    def refuse_foreign(route: Route) -> None:
        if local(route.request.url):
            route.continue_()
        else:
            route.abort()

    def record(request: Request) -> None:
        # Also those the page's CSP blocks before they reach the router.
        if not local(request.url):
            foreign.append(request.url)

    page.context.route("**/*", refuse_foreign)
    page.on("request", record)
    page.add_init_script(_RECORD_VIOLATIONS)
    page.goto(url)
    return foreign


def _assert_kept_to_itself(page: Page, foreign: list[str]) -> None:
    page.wait_for_load_state("networkidle")
    assert foreign == []
    assert page.evaluate("window.violations") == []
    assert page.locator("link[rel=icon]").get_attribute("href") == "docs/icon.svg"


def test_swagger_ui_renders_and_tries_a_request_from_this_origin_only(
    new_page: NewPage, service: str
) -> None:
    page = new_page()
    foreign = _open_recorded(page, f"{service}/docs")
    operation = page.locator("#operations-operations-healthz_healthz_get")
    expect(operation).to_contain_text("Liveness")
    operation.get_by_text("/healthz", exact=True).click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table td.response-col_status:not(.col_header)")
    expect(status).to_have_text("200")
    page.screenshot(path=artifact("docs-swagger-ui.png"))
    _assert_kept_to_itself(page, foreign)


def test_redoc_renders_and_searches_from_this_origin_only(new_page: NewPage, service: str) -> None:
    page = new_page()
    foreign = _open_recorded(page, f"{service}/redoc")
    heading = page.locator("h2", has_text="Liveness")
    # Redoc renders the document section by section and `operations` comes last: on a loaded
    # machine (the suite's other process and the browser share two cores) that took over 5 s.
    expect(heading).to_be_visible(timeout=30_000)
    page.get_by_placeholder("Search...").fill("Liveness")
    expect(page.locator("[data-role='search:results']")).to_contain_text("Liveness")
    page.screenshot(path=artifact("docs-redoc.png"))
    _assert_kept_to_itself(page, foreign)
