"""The runs page pages, sorts and searches through the server, keeping its state in the
address; the run page draws a long metric history thinned by the server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.ui.conftest import Site
from tests.server.ui.test_pages import _axe, _page

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (fails in CI) without playwright
    expect = None

pytestmark = pytest.mark.slow
RUNS = 30
DASH = "\N{EN DASH}"


@pytest.fixture(scope="module")
def paging_runs(site: Site) -> list[str]:
    """Thirty runs in experiment ``paging``: run ``p-NN`` has final acc NN / 100."""
    ids = []
    with site.api() as api:
        for i in range(RUNS):
            made = api.post("/runs", json={"experiment": "paging", "name": f"p-{i:02d}"})
            run = made.json()["id"]
            body = {"params": {"opt": "sgd" if i % 2 else "adam"},
                    "metrics": [{"key": "acc", "value": i / 200, "step": 0},
                                {"key": "acc", "value": i / 100, "step": 1}]}  # fmt: skip
            api.post(f"/runs/{run}/log-batch", json=body).raise_for_status()
            api.post(f"/runs/{run}/end", json={"status": "completed"}).raise_for_status()
            ids.append(run)
    return ids


def _names(page: Any) -> list[str]:
    return page.locator("#runs-table tbody tr td:nth-child(2)").all_inner_texts()


def test_pages_sort_and_search_go_through_the_server_and_the_address(
    browser: Any, site: Site, paging_runs: list[str]
) -> None:
    page = _page(browser, site, path="/ui/runs?experiment=paging&limit=25")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.locator("#runs-count")).to_have_text(f"Runs 1{DASH}25 of 30")
    assert _names(page)[0] == "p-29" and page.locator("#prev").is_disabled()

    page.locator("#next").click()
    page.wait_for_url("**offset=25**")
    expect(rows).to_have_count(5)
    expect(page.locator("#runs-count")).to_have_text(f"Runs 26{DASH}30 of 30")
    assert _names(page) == ["p-04", "p-03", "p-02", "p-01", "p-00"]
    assert page.locator("#next").is_disabled()
    page.go_back()  # the previous page is a step in the history
    expect(rows).to_have_count(25)

    page.locator("th.metric button", has_text="acc").click()
    page.wait_for_url("**sort=metrics.acc**")
    expect(page.locator("th.metric[aria-sort='descending']")).to_have_count(1)
    page.locator("th.metric button", has_text="acc").click()
    page.wait_for_url("**order=asc**")
    expect(page.locator("#runs-table tbody tr").first).to_contain_text("p-00")

    page.fill("#filter", "metrics.acc >= 0.25 params.opt = sgd")
    page.press("#filter", "Enter")
    expect(page.locator("#runs-count")).to_have_text(f"Runs 1{DASH}3 of 3")
    assert _names(page) == ["p-25", "p-27", "p-29"]
    assert _axe(page) == []

    # A reload (or a shared link) shows the same search, order and rows.
    page.reload()
    page.wait_for_selector("#runs-table")
    assert page.input_value("#filter") == "metrics.acc >= 0.25 params.opt = sgd"
    assert _names(page) == ["p-25", "p-27", "p-29"]

    page.fill("#filter", "metrics.acc > high")
    page.press("#filter", "Enter")
    alert = page.locator("#search-problem [role=alert]")
    expect(alert).to_contain_text("compares with a number")
    assert page.errors == []


def test_a_long_history_is_drawn_from_a_thinned_series(browser: Any, site: Site) -> None:
    with site.api() as api:
        run = api.post("/runs", json={"experiment": "long", "name": "long"}).json()["id"]
        spike = 2500
        points = [{"key": "loss", "value": 9.0 if s == spike else 1.0 / (s + 1), "step": s}
                  for s in range(5000)]  # fmt: skip
        api.post(f"/runs/{run}/log-batch", json={"metrics": points}).raise_for_status()
        api.post(f"/runs/{run}/end", json={"status": "completed"}).raise_for_status()
    page = _page(browser, site, path=f"/ui/runs/{run}")
    chart = page.locator("figure.chart[data-title='loss']")
    chart.wait_for()
    drawn = int(chart.get_attribute("data-points") or 0)
    assert 100 < drawn <= 1000
    # The spike survives the thinning: the chart's largest value is it.
    assert page.evaluate(
        "() => Math.max(...document.querySelector(\"figure.chart[data-title='loss']\")"
        "._plot.data[1].filter((v) => v !== null))"
    ) == pytest.approx(9.0)
    assert page.errors == []
