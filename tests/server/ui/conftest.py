"""A real `amlpkg server` on a free port over a quickstart workspace, and Chromium to drive it.

The workspace gets what the quickstart makes (a run, a model version, a variant, a package,
a deployment, telemetry) plus, through the API, a second run to compare, a run in progress,
and a device reporting under the quickstart's deployment, so every page has real data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import make_token
from tests.services import free_port, require
from tests.team_server import wait_healthy

CHROMIUM = Path("/usr/bin/chromium")
CLI = str(Path(sys.executable).parent / "amlpkg")
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@dataclass
class Site:
    """The running server, its tokens per role and the ids the tests look for."""

    url: str
    tokens: dict[str, str]
    quickstart_run: str
    second_run: str
    live_run: str
    device: str

    def api(self, role: str = "contributor") -> httpx.Client:
        """A client of /api/v1 with the token of ``role``."""
        auth = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=auth, timeout=30)


def _populate(site: Site) -> tuple[str, str]:
    """A second run (other params, a metric over steps) and a run still in progress."""
    with site.api() as api:
        second = api.post("/runs", json={"experiment": "quickstart", "name": HOSTILE,
                                         "tags": {"note": HOSTILE}}).json()["id"]  # fmt: skip
        points = [{"key": "loss", "value": 1.0 / (s + 1), "step": s} for s in range(20)]
        api.post(f"/runs/{second}/log-batch", json={
            "params": {"C": "0.1", "cv_folds": "5", "dataset": "iris"},
            "metrics": [*points, {"key": "test_accuracy", "value": 0.91, "step": 0},
                        *({"key": "cv_accuracy", "value": 0.8 + s / 50, "step": s}
                          for s in range(5))],
        }).raise_for_status()  # fmt: skip
        api.post(f"/runs/{second}/end", json={"status": "completed"}).raise_for_status()
        live = api.post("/runs", json={"experiment": "live", "name": "training"}).json()["id"]
        first = [{"key": "loss", "value": 2.0 - s / 10, "step": s} for s in range(3)]
        api.post(f"/runs/{live}/log-batch", json={"metrics": first}).raise_for_status()
        now = time.time()
        messages = [
            {"message_id": f"m{i}", "device": "plant-7", "deployment": "quickstart:1",
             "model": "iris-classifier", "version": 1, "seq": i, "time": now - 60 * (5 - i),
             "window_s": 60, "requests": 600 + 40 * i, "errors": i % 2,
             "latency_avg_ms": 2.0 + i / 10, "compute_p50_ms": 1.8, "compute_p95_ms": 4.0 + i}
            for i in range(5)
        ]  # fmt: skip
        api.post(f"{site.url}/v1/devices", json=messages).raise_for_status()
    return second, live


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require(CHROMIUM.exists(), "Debian's chromium (apt-get install chromium) drives the UI tests")
    root = tmp_path_factory.mktemp("ui")
    home = root / "ws"
    env = {**os.environ, "AMLPKG_HOME": str(home)}
    subprocess.run([CLI, "quickstart"], cwd=root, env=env, check=True, capture_output=True,
                   timeout=240)  # fmt: skip
    from amlpkg.collector import devices
    from amlpkg.store.workspace import open_workspace

    with open_workspace(home) as ws:
        run_id = ws.conn.execute("SELECT id FROM runs").fetchone()[0]
        sha = ws.conn.execute("SELECT sha256 FROM model_versions").fetchone()[0]
        devices.set_desired(ws, "plant-7", "iris-classifier:1", sha, deployment_id="quickstart:1")
    tokens = {role: make_token(home, role)[0] for role in ("reader", "contributor", "owner")}
    port = free_port()
    log = root / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [CLI, "server", "--store", str(home), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, log)
        site = Site(url, tokens, run_id, "", "", "plant-7")
        site.second_run, site.live_run = _populate(site)
        yield site
    finally:
        server.terminate()
        server.wait(20)


# Module scope: sync Playwright keeps an event loop running in this thread while it is open,
# which in-process ASGI tests (asyncio.run) of other modules cannot share.
@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright (pip, the dev extra) drives Chromium")
        raise
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests leave screenshots (AMLPKG_UI_SCREENSHOTS to keep them)."""
    chosen = os.environ.get("AMLPKG_UI_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("shots")
    path.mkdir(parents=True, exist_ok=True)
    return path
