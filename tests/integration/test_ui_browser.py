"""The experiment page in a real browser: headless Chromium (Debian's) driven by Playwright.

The router runs under gunicorn on a database seeded with a running experiment, its looks
and log rows (``tests.api.test_ui.seed``) and a read token. The browser signs in, opens
the list, the experiment and the serving overview, and checks the rendered page: visible
text, drawn SVG, the colours of the health checks, an HttpOnly cookie. Screenshots go to
``$UI_SCREENSHOTS`` (default: the test's temporary folder). ``make test`` installs the
browser first (``scripts/stack/ensure-chromium.sh``); Playwright's own browsers are never
downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.api.conftest import RouterServer
from tests.api.test_ui import ENDED, READ_TOKEN, RUNNING, seed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    from dethrone.store import SqlConfigStore, make_engine
    from dethrone.store.engine import default_url
    from dethrone_router.validation import DEFAULTS

    data_dir = tmp_path_factory.mktemp("ui") / "router"
    engine = make_engine(default_url(data_dir))
    seeded = seed(engine, SqlConfigStore(engine, dict(DEFAULTS)), rows=3000)
    engine.dispose()
    import requests

    for attempt in range(3):
        try:
            server = RouterServer(data_dir, workers=2, env={"ROUTER_READ_TOKEN": READ_TOKEN})
            break
        except requests.Timeout:  # a /health probe of a worker still booting on a busy
            if attempt == 2:  # machine: RouterServer stopped it; start it again
                raise
    try:
        yield server, seeded
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run sh scripts/stack/ensure-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_list_experiment_and_serving_pages(router, browser, shots):
    server, seeded = router
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    failed = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    try:
        # Not signed in: the list sends the browser to the sign-in form.
        page.goto(server.url + "/ui/")
        assert page.url.startswith(server.url + "/ui/login")
        page.fill("#token", "not the token")
        page.click("button[type=submit]")
        assert page.get_by_role("alert").inner_text() == "wrong token"
        page.fill("#token", READ_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/ui/")
        cookie = next(c for c in context.cookies() if c["name"] == "dethrone_ui")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert READ_TOKEN not in cookie["value"] and READ_TOKEN not in page.url
        assert page.evaluate("document.cookie") == ""  # scripts cannot read the session

        # The list: running first, both experiments with their versions and states.
        rows = page.locator("#experiments tbody tr")
        assert rows.count() == 2
        first = rows.nth(0).inner_text()
        assert RUNNING in first and "running" in first and "v2" in first and "v3" in first
        assert ENDED in rows.nth(1).inner_text() and "promoted" in rows.nth(1).inner_text()
        page.screenshot(path=str(shots / "ui-list.png"), full_page=True)

        # The running experiment's page.
        page.click(f"text={RUNNING}")
        page.wait_for_url(f"{server.url}/ui/experiments/{RUNNING}")
        assert page.locator("#state").inner_text() == "running"
        assert page.locator("#lifecycle li.current").inner_text() == "running"
        arms = page.locator("#arms tbody tr")
        assert arms.count() == 2
        assert "v2" in arms.nth(0).inner_text() and "v3" in arms.nth(1).inner_text()
        served = sum(
            int(arms.nth(i).locator("td").nth(2).inner_text().replace(",", "")) for i in (0, 1)
        )
        labelled = sum(
            int(arms.nth(i).locator("td").nth(4).inner_text().replace(",", "")) for i in (0, 1)
        )
        assert (served, labelled) == (seeded["rows"], seeded["labels"])
        assert "absolute error of price" in arms.nth(0).inner_text()
        charts = page.locator("svg.chart")
        assert charts.count() == 2
        for i in (0, 1):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 400 and box["height"] > 120
            assert charts.nth(i).locator("polygon.band-experiment").count() == 1
            assert charts.nth(i).locator("g.look").count() == 6
            zero = charts.nth(i).locator("line.zero").bounding_box()  # height 0: a line
            assert zero and zero["width"] > 300
            assert charts.nth(i).locator("line.margin").count() == 1
        # Health checks: green and red, as rendered.
        srm = page.locator('li.check[data-check="sample ratio"]')
        p99 = page.locator('li.check[data-check="p99 latency"]')
        assert "pass" in srm.inner_text() and "p = 0.62" in srm.inner_text()
        assert "fail" in p99.inner_text() and "97" in p99.inner_text()
        colour = "el => getComputedStyle(el.querySelector('.mark')).color"
        assert srm.evaluate(colour) == "rgb(21, 128, 61)"  # green
        assert p99.evaluate(colour) == "rgb(185, 28, 28)"  # red
        assert "240/228 units" in page.locator("#reasons").inner_text()
        audit = page.locator("#audit").inner_text()
        assert "alice" in audit and "new features" in audit and "split 70/30" in audit
        assert page.locator('meta[http-equiv="refresh"]').count() == 1
        page.screenshot(path=str(shots / "ui-experiment-running.png"), full_page=True)

        # The ended experiment: decision marker and the guardrail window on the charts.
        page.goto(f"{server.url}/ui/experiments/{ENDED}")
        assert page.locator("#state").inner_text() == "promoted"
        assert page.locator("svg.chart g.marker-decision").count() == 2
        assert page.locator("svg.chart rect.marker-window").count() == 2
        assert page.locator('meta[http-equiv="refresh"]').count() == 0
        page.screenshot(path=str(shots / "ui-experiment-promoted.png"), full_page=True)

        # The serving overview.
        page.click("header >> text=Serving")
        page.wait_for_url(server.url + "/ui/serving")
        cards = page.locator("#serving-config").inner_text()
        assert "ab" in cards and "70.0% / 30.0%" in cards and RUNNING in cards
        assert page.get_by_text("Traffic of the last 5 minutes").is_visible()
        page.screenshot(path=str(shots / "ui-serving.png"), full_page=True)

        # Signing out ends the session.
        page.click("text=Sign out")
        # the sign-out's own redirect first: a goto during it would abort it (ERR_ABORTED)
        page.wait_for_url(server.url + "/ui/login**")
        page.goto(server.url + "/ui/")
        assert page.url.startswith(server.url + "/ui/login")
        assert not failed, failed  # nothing fetched from elsewhere, nothing broken
    finally:
        context.close()
