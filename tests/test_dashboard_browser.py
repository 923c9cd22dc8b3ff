"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright).

Each page loads with no console errors and its charts have data; without the token a browser
gets the sign-in form, and signing in opens the dashboard. Skipped, saying why, when Playwright
or a Chromium binary is missing (``apt-get install -y chromium``; ``pip install playwright``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import TEST_ADMIN_TOKEN
from tests.test_dashboard import EXPERIMENT, ROUTE, Seeded, seeded  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed"),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)"),
]

PAGES = ("/", f"/routes/{ROUTE}", f"/experiments/{EXPERIMENT}", "/routes/default")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _watch(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


@pytest.mark.parametrize("window", ["hour", "day", "week", "month"])
def test_dashboard_pages_load_in_chromium_without_console_errors(
    seeded: Seeded,  # noqa: F811
    browser: Any,
    window: str,
) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors = _watch(page)
    # Sign in once through the URL: the answer sets the cookie and redirects.
    resp = page.goto(f"{seeded.base}/?window={window}&token={TEST_ADMIN_TOKEN}")
    assert resp is not None and resp.status == 200 and "token=" not in page.url
    for path in PAGES:
        resp = page.goto(f"{seeded.base}{path}?window={window}")
        assert resp is not None and resp.status == 200, path
        charts = page.locator("svg.chart")
        points = [
            int(charts.nth(i).get_attribute("data-points") or 0) for i in range(charts.count())
        ]
        assert all(p > 0 for p in points), (path, points)
        if path.startswith("/routes/"):
            assert len(points) == 3
            box = charts.first.bounding_box()
            assert box is not None and box["width"] > 300  # rendered, not collapsed
    assert errors == []
    context.close()


def test_dashboard_browser_without_token_gets_the_form_and_can_sign_in(
    seeded: Seeded,  # noqa: F811
    browser: Any,
) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors = _watch(page)
    resp = page.goto(f"{seeded.base}/routes/{ROUTE}")
    assert resp is not None and resp.status == 401
    assert page.locator("svg.chart").count() == 0
    page.fill("input[name=token]", TEST_ADMIN_TOKEN)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.locator("table.routes").count() == 1
    # The only console error allowed is the 401 of the first, refused load.
    assert all("401" in e for e in errors), errors
    context.close()
