"""The web UI in headless Chromium against a real server: each page with real values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.server.ui.conftest import HOSTILE, Site

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (fails in CI) without playwright
    expect = None

pytestmark = pytest.mark.slow
AXE = Path(__file__).with_name("axe.min.js")


def _page(browser: Any, site: Site, role: str = "owner", path: str = "/ui/runs") -> Any:
    """A fresh tab signed in with the token of ``role`` (each context has its own storage)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(f"{site.url}{path}#token={site.tokens[role]}")
    page.wait_for_selector("#role")
    assert "token=" not in page.url, "the token leaves the address bar at once"
    return page


def _axe(page: Any) -> list[str]:
    """Critical and serious axe-core violations of the page as it is."""
    # Through the DevTools protocol: the page's CSP (script-src 'self') rightly refuses a tag.
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;0")
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['critical', 'serious'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))"
    )
    return list(found)


def test_runs_table_run_page_and_its_metric_chart(browser: Any, site: Site, shots: Path) -> None:
    page = _page(browser, site)
    table = page.locator("#runs-table")
    table.wait_for()
    row = page.locator(f"tr[data-run='{site.quickstart_run}']")
    assert "iris-logreg" in row.inner_text()
    assert "0.9778" in row.inner_text()  # the quickstart's test_accuracy
    # User-controlled text is shown as text, never run as markup.
    assert HOSTILE in table.inner_text()
    assert page.evaluate("window.__pwned") is None
    page.fill("#filter", "iris-logreg")
    page.press("#filter", "Enter")  # the server filters; the address keeps the search
    page.wait_for_url("**/ui/runs?q=iris-logreg")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    page.fill("#filter", "")
    page.press("#filter", "Enter")
    expect(page.locator("#runs-table tbody tr")).not_to_have_count(1)
    page.get_by_role("button", name="Started").click()
    expect(page.locator("th[aria-sort='ascending']")).to_have_count(1)
    assert _axe(page) == []
    page.screenshot(path=shots / "runs.png", full_page=True)

    page.locator(f"a[href='/ui/runs/{site.second_run}']").click()
    chart = page.locator("figure.chart[data-title='loss']")
    chart.wait_for()
    assert chart.get_attribute("data-points") == "20"
    assert chart.locator("canvas").count() >= 1
    assert page.evaluate("window.__pwned") is None
    page.goto(f"{site.url}/ui/runs/{site.quickstart_run}")
    page.get_by_text("Parity of the ONNX export").wait_for()
    assert page.get_by_text("passed", exact=True).count() >= 1
    assert page.locator("a[href='/ui/models/iris-classifier/1']").count() >= 1
    assert page.get_by_text("model/model.onnx").count() >= 1
    assert _axe(page) == []
    page.screenshot(path=shots / "run.png", full_page=True)
    assert page.errors == []


def test_compare_two_runs_marks_the_params_that_differ(
    browser: Any, site: Site, shots: Path
) -> None:
    page = _page(browser, site)
    page.locator("#runs-table").wait_for()
    for run in (site.quickstart_run, site.second_run):
        page.locator(f"tr[data-run='{run}'] input[type=checkbox]").check()
    page.locator("#compare").click()
    page.locator("#cmp-params-table").wait_for()
    differing = page.locator("#cmp-params-table tr.diff[data-key='C']")
    assert re.search(r"1\.0\s+0\.1", differing.inner_text())
    assert page.locator("#cmp-params-table tr[data-key='dataset']:not(.diff)").count() == 1
    assert page.locator("#cmp-metrics-table tr.diff[data-key='test_accuracy']").count() == 1
    overlaid = page.locator("figure.chart[data-title='cv_accuracy']")
    overlaid.wait_for()
    assert overlaid.get_attribute("data-points") == "10"  # both runs' five folds
    assert _axe(page) == []
    page.screenshot(path=shots / "compare.png", full_page=True)
    assert page.errors == []


def test_model_version_page_shows_digest_signature_and_variants(
    browser: Any, site: Site, shots: Path
) -> None:
    page = _page(browser, site, path="/ui/models")
    page.locator("a[href='/ui/models/iris-classifier']").click()
    page.locator("#versions-table a[href='/ui/models/iris-classifier/1']").click()
    page.locator("#variants-table").wait_for()
    with site.api("reader") as api:
        version = api.get("/models/iris-classifier/versions/1").json()
    assert page.locator("#digest").inner_text() == version["sha256"]
    assert "@production" in page.locator("main").inner_text()
    assert "probabilities" in page.locator("#signature").inner_text()
    variants = page.locator("#variants-table").inner_text()
    assert "×" in variants  # the measured speed-up  # noqa: RUF001
    assert "chosen" in variants
    assert _axe(page) == []
    page.screenshot(path=shots / "version.png", full_page=True)
    assert page.errors == []


def test_lineage_graph_clicks_through_from_the_device_to_the_run_and_back(
    browser: Any, site: Site, shots: Path
) -> None:
    page = _page(browser, site, path="/ui/devices")
    row = page.locator("#devices-table tr", has_text=site.device)
    assert "iris-classifier:1" in row.inner_text()
    page.locator(f"a[href='/ui/devices/{site.device}']").click()
    page.get_by_role("link", name="Lineage of this device").click()
    page.locator("#graph canvas").first.wait_for()
    assert page.locator("#nodes li").count() == 4  # device, deployment, version, run
    assert _axe(page) == []
    page.screenshot(path=shots / "lineage.png", full_page=True)
    # Click the run's node where cytoscape drew it.
    node = f"run/{site.quickstart_run}"
    box = page.locator("#graph").bounding_box()
    where = page.evaluate(
        "id => document.getElementById('graph')._cy.getElementById(id).renderedPosition()", node
    )
    page.mouse.click(box["x"] + where["x"], box["y"] + where["y"])
    page.wait_for_url(f"**/ui/runs/{site.quickstart_run}")
    page.get_by_role("link", name="Lineage of this run").click()
    page.locator(f"#nodes a[data-node='device/{site.device}']").click()
    page.wait_for_url(f"**/ui/devices/{site.device}")
    page.locator("figure.chart[data-title='Requests per second']").wait_for()
    assert "iris-classifier:1" in page.locator("main").inner_text()
    assert _axe(page) == []
    page.screenshot(path=shots / "device.png", full_page=True)
    assert page.errors == []


def test_deployment_page_and_write_controls_follow_the_role(
    browser: Any, site: Site, shots: Path
) -> None:
    reader = _page(browser, site, "reader", "/ui/deployments")
    reader.locator("a[href='/ui/deployments/quickstart']").click()
    reader.locator("#revisions").wait_for()
    assert "127.0.0.1" in reader.locator("#revisions").inner_text()
    reader.locator("figure.chart[data-title='Latency (ms)']").wait_for()
    assert reader.get_by_role("button", name="Roll back").count() == 0
    assert _axe(reader) == []
    reader.screenshot(path=shots / "deployment.png", full_page=True)
    # A forged request from the reader's own tab is refused by the API.
    status = reader.evaluate(
        """async () => (await fetch('/api/v1/deployments/quickstart/rollback', {
             method: 'POST',
             headers: {Authorization: 'Bearer ' + sessionStorage.getItem('amlpkg.token')},
           })).status"""
    )
    assert status == 403
    contributor = _page(browser, site, "contributor", "/ui/deployments/quickstart")
    contributor.locator("#revisions").wait_for()
    assert contributor.get_by_role("button", name="Roll back").count() == 1
    assert contributor.get_by_role("button", name="Delete").count() == 1


def test_a_run_in_progress_shows_new_points_without_a_reload(browser: Any, site: Site) -> None:
    page = _page(browser, site, path=f"/ui/runs/{site.live_run}")
    chart = page.locator("figure.chart[data-title='loss']")
    chart.wait_for()
    assert chart.get_attribute("data-points") == "3"
    more = [{"key": "loss", "value": 1.5 - s / 10, "step": s} for s in range(3, 6)]
    with site.api() as api:
        api.post(f"/runs/{site.live_run}/log-batch", json={"metrics": more}).raise_for_status()
    page.locator("figure.chart[data-title='loss'][data-points='6']").wait_for(timeout=10_000)


def test_a_wrong_token_is_sent_back_to_the_sign_in_form(browser: Any, site: Site) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{site.url}/ui/runs#token=amlpkg_000000000000_nope")
    page.get_by_role("alert").wait_for()
    assert page.locator("#token").count() == 1
    assert _axe(page) == []
    page.fill("#token", site.tokens["reader"])
    page.get_by_role("button", name="Sign in").click()
    page.locator("#role[data-role='reader']").wait_for()
