"""How the server serves the UI (in-process), and `amlpkg ui` as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from amlpkg.server import tokens
from amlpkg.store.workspace import open_workspace
from tests.server.conftest import Api
from tests.services import free_port

CLI = str(Path(sys.executable).parent / "amlpkg")


def test_every_ui_path_answers_the_index_with_a_strict_policy(app: FastAPI) -> None:
    client = Api(app)
    assert client.get("/").headers["location"] == "/ui/"
    for path in ("/ui", "/ui/", "/ui/runs/abc", "/ui/lineage/variant/a%2Fb"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    script = re.search(r'src="/ui/(assets/[^"]+\.js)"', client.get("/ui/").text)
    assert script is not None
    asset = client.get(f"/ui/{script[1]}")
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert client.get("/ui/assets/missing.js").status_code == 404


def test_the_ui_is_not_part_of_the_api_contract(app: FastAPI) -> None:
    paths = Api(app).get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_whoami_tells_the_role_and_never_the_secret(
    api: dict[str, Api], role_tokens: dict[str, str]
) -> None:
    me = api["reader"].get("/api/v1/whoami").json()
    assert me["role"] == "reader"
    assert role_tokens["reader"] not in str(me)
    assert api["anonymous"].get("/api/v1/whoami").status_code == 401


@pytest.mark.slow
def test_amlpkg_ui_mints_an_owner_token_for_the_page_and_revokes_it_at_exit(
    tmp_path: Path,
) -> None:
    port = free_port()
    home = tmp_path / "ws"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    ui = subprocess.Popen(
        [CLI, "ui", "--home", str(home), "--port", str(port), "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert ui.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = ui.stdout.readline()
            assert line, "amlpkg ui exited before printing its URL"
            url = line.split("open ", 1)[1].strip() if line.startswith("open ") else ""
        assert url.startswith(f"http://127.0.0.1:{port}/ui/#token=amlpkg_"), url
        token = url.split("#token=", 1)[1]
        auth = {"Authorization": f"Bearer {token}"}
        while True:
            try:
                me = httpx.get(f"http://127.0.0.1:{port}/api/v1/whoami", headers=auth, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "amlpkg ui did not start serving"
                time.sleep(0.1)
        assert me.json()["role"] == "owner"
    finally:
        ui.terminate()
        ui.wait(20)
        if ui.stdout is not None:
            ui.stdout.close()
    with open_workspace(home) as ws:
        (minted,) = tokens.list_tokens(ws)
    assert minted.revoked is not None


def test_a_long_metric_history_is_thinned_evenly_keeping_both_ends(api: dict[str, Api]) -> None:
    writer = api["contributor"]
    run = writer.post("/api/v1/runs", json={"experiment": "thin"}).json()["id"]
    points = [{"key": "loss", "value": float(s), "step": s} for s in range(1000)]
    writer.post(f"/api/v1/runs/{run}/log-batch", json={"metrics": points}).raise_for_status()
    url = f"/api/v1/runs/{run}/metrics/loss"
    thin = api["reader"].get(url, params={"max_points": 11}).json()["points"]
    steps = [p["step"] for p in thin]
    assert steps == [round(i * 999 / 10) for i in range(11)]
    assert steps[0] == 0 and steps[-1] == 999
    assert len(api["reader"].get(url).json()["points"]) == 1000
