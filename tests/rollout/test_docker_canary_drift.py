"""``deploy --target docker --canary``: a canary whose outputs are shifted is rolled back
by ``drift``, on the real Docker engine with real images from ``amlpkg build``.

Both revisions are deployed with ``telemetry_endpoint``: their runtime containers export
traces and output summaries by OTLP to a real collector on this host (reached at the
engine's bridge gateway); the proxy container splits the requests between them. No
Docker engine: skipped, or failed when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from amlpkg.collector.server import running_collector
from amlpkg.errors import AmlpkgError
from amlpkg.packager import deploy as api
from amlpkg.packager.deploy import canary
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.registry import register
from tests.edge_agent.conftest import add_model, write
from tests.services import docker_available, require

pytestmark = pytest.mark.slow
TAG = "amlpkg-drift-test/m"
NAME = "drifty"
GATE = "error_rate<0.01,drift<0.2"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with m:1 (Y = X + 1) and m:2 (Y = X + 5), each built into an image."""
    require(docker_available(), "a Docker engine is needed")
    from amlpkg.packager.build.api import build_image
    from amlpkg.packager.build.base_image import LOCAL_BASE_TAG, ensure_local_base
    from amlpkg.packager.build.options import BuildOptions

    ensure_local_base()
    tmp = tmp_path_factory.mktemp("docker-drift")
    with open_workspace(tmp / "home") as ws:
        for version, offset in ((1, 1.0), (2, 5.0)):
            register("m", write(tmp, f"m{version}.onnx", add_model(offset)), workspace=ws)
            options = BuildOptions(tag=f"{TAG}:{version}", base_image=LOCAL_BASE_TAG)
            build_image(ws, f"m:{version}", options)
    return tmp / "home"


@pytest.fixture
def ws(home: Path) -> Iterator[Workspace]:
    with open_workspace(home) as workspace:
        try:
            yield workspace
        finally:
            with contextlib.suppress(AmlpkgError):
                api.delete(NAME, workspace=workspace)


def _gateway() -> str:
    """The host's address on Docker's default bridge: containers reach the collector there."""
    done = subprocess.run(
        ["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def _deploy(ws: Workspace, version: int, endpoint: str, **options: object) -> DeploymentRecord:
    opts = {"image": f"{TAG}:{version}", "cpus": 1, "memory": "512Mi",
            "telemetry_endpoint": endpoint, **options}  # fmt: skip
    return api.deploy(f"m:{version}", target="docker", name=NAME, options=opts, workspace=ws)


def _load(url: str, n: int) -> set[float]:
    """``n`` requests of 2 random rows through the proxy; the offsets that answered."""
    rng = np.random.default_rng(0)
    seen = set()
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            x = rng.uniform(0.0, 1.0, (2, 4)).astype(np.float32)
            body = {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32",
                                "data": x.ravel().tolist()}]}  # fmt: skip
            answer = client.post(f"{url}/v2/models/m/infer", json=body)
            answer.raise_for_status()
            y = answer.json()["outputs"][0]["data"][0]
            seen.add(round(y - float(x[0, 0])))
    return seen


def test_a_docker_canary_with_shifted_outputs_is_rolled_back_by_drift(ws: Workspace) -> None:
    # bound on the bridge gateway only: the containers reach it, nothing outside this host
    with running_collector(ws, host=_gateway(), port=0) as collector:
        endpoint = collector.url
        stable = _deploy(ws, 1, endpoint)
        assert stable.endpoint_http is not None
        shifted = _deploy(ws, 2, endpoint, canary_percent=50)
        assert shifted.state["canary"]["stable"] == stable.id
        assert _load(stable.endpoint_http, 120) == {1, 5}  # both revisions answer
        deadline = time.monotonic() + 90
        verdict = canary.evaluate(ws, NAME, GATE)
        while not verdict["decided"] and time.monotonic() < deadline:
            time.sleep(1.0)  # traces within 1 s, summaries every 5 s
            verdict = canary.evaluate(ws, NAME, GATE)
        assert verdict["decided"], verdict
        verdict, decided = canary.decide(ws, None, NAME, GATE)
    assert decided is not None and verdict["passed"] is False
    assert verdict["cohort"]["error_rate"] == 0.0
    assert [f["metric"] for f in verdict["failures"]] == ["drift"]
    assert verdict["failures"][0]["observed"] > 0.5
    assert decided.status == "stopped" and "drift<0.2 failed" in (decided.reason or "")
    assert _load(stable.endpoint_http, 20) == {1}  # all traffic back on the serving revision
