"""``--target local``: real supervisor and runtime processes on free ports, real clients.

Every test deletes its deployments in a finalizer, so no process outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from amlpkg.errors import AmlpkgError, NotFoundError
from amlpkg.packager import deploy as api
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.smoke import SmokeTestError
from amlpkg.packager.deploy.supervisor_client import control_info
from amlpkg.packager.deploy.targets.local import state_dir
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.lineage_view import lineage
from amlpkg.trainer.registry import register
from tests.runtime import toy_models

MODEL = "scorer"
SAMPLE = [[0.5, -1.0, 2.0, 0.25]]


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace with ``scorer`` v1 and v2 (different weights) and ``scorer`` v3 broken."""
    with open_workspace(tmp_path / "home") as workspace:
        files = tmp_path / "files"
        for version, model in enumerate(
            (
                toy_models.mlp_model((4, 8, 3), seed=0),
                toy_models.mlp_model((4, 8, 3), seed=1),
                # Loads fine, fails at run time on any input (the smoke test catches it).
                toy_models.fails_on_large_model(threshold=-1.0),
            ),
            start=1,
        ):
            path = toy_models.save(model, files, MODEL, version)
            register(MODEL, path, workspace=workspace)
        names: list[str] = []
        workspace.__dict__["deployed"] = names
        yield workspace
        for name in names:
            with contextlib.suppress(AmlpkgError):
                api.delete(name, workspace=workspace)


def _deploy(ws: Workspace, ref: str, name: str, **options: Any) -> records.DeploymentRecord:
    ws.__dict__["deployed"].append(name)
    return api.deploy(ref, target="local", name=name, options=options, workspace=ws)


def _score_http(url: str, client: httpx.Client | None = None) -> int:
    """One V2 JSON inference; returns the model version that answered."""
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": SAMPLE[0]}]}
    post = client.post if client is not None else httpx.post
    response = post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=10.0)
    response.raise_for_status()
    return int(response.json()["model_version"])


def test_deploy_records_serves_and_shows_in_lineage(ws: Workspace) -> None:
    record = _deploy(ws, f"{MODEL}:1", "web")
    assert record.status == "ready" and record.id == "web:1"
    assert record.model == f"{MODEL}:1" and record.state["verified"] is True
    assert record.created_by.count("@") == 1
    assert record.endpoint_http is not None and record.endpoint_grpc is not None
    # The real tritonclient, HTTP and gRPC, through the stable endpoint.
    http = httpclient.InferenceServerClient(record.endpoint_http.removeprefix("http://"))
    tensor = httpclient.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.array(SAMPLE, dtype=np.float32))
    assert http.infer(MODEL, [tensor]).as_numpy("y").shape == (1, 3)
    http.close()
    grpc = grpcclient.InferenceServerClient(record.endpoint_grpc)
    gtensor = grpcclient.InferInput("x", [1, 4], "FP32")
    gtensor.set_data_from_numpy(np.array(SAMPLE, dtype=np.float32))
    assert grpc.infer(MODEL, [gtensor]).as_numpy("y").shape == (1, 3)
    grpc.close()
    edges = lineage(f"{MODEL}:1", workspace=ws)["downstream"]
    assert {"dst_kind": "deployment", "dst_id": "web:1", "relation": "deployed_as"}.items() <= (
        edges[0].items()
    )
    live = api.status("web", workspace=ws)
    assert live["status"] == "ready" and live["live"]["ready"] is True
    assert live["live"]["serving"] == "web:1"
    pid = live["live"]["backends"]["web:1"]["pid"]
    assert pid == record.state["pid"]

    stopped = api.delete("web", workspace=ws)
    assert stopped.status == "stopped" and stopped.reason == "deleted"
    assert control_info(state_dir(ws, "web")) is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{record.endpoint_http}/v2/health/ready", timeout=2.0)
    assert api.status("web", workspace=ws)["live"]["ready"] is False


def test_broken_model_is_recorded_failed_and_old_keeps_serving(ws: Workspace) -> None:
    good = _deploy(ws, f"{MODEL}:1", "web")
    assert good.endpoint_http is not None
    with pytest.raises(SmokeTestError) as caught:
        _deploy(ws, f"{MODEL}:3", "web", ready_timeout_s=30.0)
    assert "web:1 keeps serving" in (caught.value.hint or "")
    failed = records.get(ws, "web:2")
    assert failed.status == "failed" and failed.reason and "smoke inference" in failed.reason
    assert records.serving(ws, "web") == records.get(ws, "web:1")
    assert _score_http(good.endpoint_http) == 1
    # The failed revision's process is gone: only web:1 runs.
    backends = api.status("web", workspace=ws)["live"]["backends"]
    assert list(backends) == ["web:1"]
    # Rolling back from web:1 has nowhere to go (web:2 never served).
    with pytest.raises(NotFoundError):
        api.rollback("web", workspace=ws)


def test_unknown_model_and_bad_name_store_nothing(ws: Workspace) -> None:
    with pytest.raises(NotFoundError):
        _deploy(ws, f"{MODEL}:9", "web")
    with pytest.raises(AmlpkgError, match="invalid deployment name"):
        _deploy(ws, f"{MODEL}:1", "Web_1")
    assert records.latest_per_name(ws) == []


class _Scorer(threading.Thread):
    """Scores until stopped (bounded): new connection per request, or one kept-alive client."""

    def __init__(self, url: str, keep_alive: bool, limit: int = 20_000) -> None:
        super().__init__(daemon=True)
        self.url, self.keep_alive, self.limit = url, keep_alive, limit
        self.stop = threading.Event()
        self.versions: list[int] = []
        self.failures: list[str] = []

    def run(self) -> None:
        client = httpx.Client() if self.keep_alive else None
        try:
            while not self.stop.is_set() and len(self.versions) < self.limit:
                try:
                    self.versions.append(_score_http(self.url, client))
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
        finally:
            if client is not None:
                client.close()


class _GrpcScorer(_Scorer):
    def run(self) -> None:
        client = grpcclient.InferenceServerClient(self.url)
        try:
            while not self.stop.is_set() and len(self.versions) < self.limit:
                tensor = grpcclient.InferInput("x", [1, 4], "FP32")
                tensor.set_data_from_numpy(np.array(SAMPLE, dtype=np.float32))
                try:
                    result = client.infer(MODEL, [tensor], client_timeout=10.0)
                    self.versions.append(int(result.get_response().model_version))
                except Exception as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()


def _while_scoring(record: records.DeploymentRecord, action: Any) -> list[_Scorer]:
    assert record.endpoint_http is not None and record.endpoint_grpc is not None
    scorers = [
        _Scorer(record.endpoint_http, keep_alive=False),
        _Scorer(record.endpoint_http, keep_alive=True),
        _GrpcScorer(record.endpoint_grpc, keep_alive=True),
    ]
    for scorer in scorers:
        scorer.start()
    try:
        action()
        # Keep scoring a little after the switch, until each scorer saw the new side.
        for scorer in scorers:
            start = len(scorer.versions)
            for _ in range(200):
                if len(scorer.versions) > start + 5:
                    break
                threading.Event().wait(0.05)
    finally:
        for scorer in scorers:
            scorer.stop.set()
        for scorer in scorers:
            scorer.join(timeout=30)
    return scorers


def test_blue_green_and_rollback_lose_no_request(ws: Workspace) -> None:
    first = _deploy(ws, f"{MODEL}:1", "web")
    scorers = _while_scoring(first, lambda: _deploy(ws, f"{MODEL}:2", "web"))
    second = records.get(ws, "web:2")
    assert second.status == "ready"
    assert (second.endpoint_http, second.endpoint_grpc) == (
        first.endpoint_http,
        first.endpoint_grpc,
    )
    assert records.get(ws, "web:1").status == "stopped"
    for scorer in scorers:
        assert scorer.failures == [], scorer.failures[:3]
        assert scorer.versions[0] == 1 and scorer.versions[-1] == 2, scorer.versions[-5:]

    scorers = _while_scoring(first, lambda: api.rollback("web", workspace=ws))
    third = records.get(ws, "web:3")
    assert third.status == "ready" and third.model == f"{MODEL}:1"
    assert third.config["rollback_of"] == "web:1"
    for scorer in scorers:
        assert scorer.failures == [], scorer.failures[:3]
        assert scorer.versions[-1] == 1
    backends = api.status("web", workspace=ws)["live"]["backends"]
    assert list(backends) == ["web:3"]


def test_quickstart_step_deploys_and_scores_over_http_and_grpc(ws: Workspace) -> None:
    ws.__dict__["deployed"].append("quickstart")
    http, grpc, message = api.quickstart_step(ws, f"{MODEL}:2")
    assert _score_http(http) == 2
    assert grpc in message and http in message and "scored over HTTP" in message
    assert records.serving(ws, "quickstart") == records.get(ws, "quickstart:1")


def test_a_crashed_runtime_is_restarted_by_the_supervisor(ws: Workspace) -> None:
    record = _deploy(ws, f"{MODEL}:1", "web")
    assert record.endpoint_http is not None
    os.kill(record.state["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    backend: dict[str, Any] = {}
    while time.monotonic() < deadline:
        backend = api.status("web", workspace=ws)["live"]["backends"]["web:1"]
        if backend["restarts"] == 1 and backend["alive"]:
            with contextlib.suppress(httpx.HTTPError):
                if _score_http(record.endpoint_http) == 1:
                    break
        time.sleep(0.2)
    assert backend["restarts"] == 1 and backend["pid"] != record.state["pid"]
    assert _score_http(record.endpoint_http) == 1


def test_deploy_a_package_folder(ws: Workspace, tmp_path: Path) -> None:
    # The folder layout of `amlpkg build --format dir`: models/<name>/<version>/model.onnx.
    folder = tmp_path / "pkg"
    toy_models.save(toy_models.mlp_model((4, 8, 3), seed=1), folder / "models", MODEL, 7)
    record = _deploy(ws, str(folder), "folder")
    assert record.status == "ready" and record.model is None
    assert record.config["source"] == str(folder)
    assert record.endpoint_http is not None
    assert _score_http(record.endpoint_http) == 7
    with pytest.raises(AmlpkgError, match="exactly one"):
        _deploy(ws, str(tmp_path), "folder")  # holds 'files', 'home', 'pkg': not a package
    assert records.serving(ws, "folder") == record


@pytest.mark.parametrize("step", ["start", "switch"])
def test_a_foreign_exception_fails_the_revision_and_old_keeps_serving(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """An OSError before the new revision runs, or after traffic already moved to it."""
    from amlpkg.errors import InternalError
    from amlpkg.packager.deploy.targets import local

    good = _deploy(ws, f"{MODEL}:1", "web")
    assert good.endpoint_http is not None
    original = getattr(local.LocalTarget, step)

    def breaks(self: Any, workspace: Workspace, rev: Any) -> None:
        if step == "switch":
            original(self, workspace, rev)  # traffic moves, then the step fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.LocalTarget, step, breaks)
    with pytest.raises(InternalError, match="No space left") as caught:
        _deploy(ws, f"{MODEL}:2", "web")
    assert "web:1 keeps serving" in (caught.value.hint or "")
    failed = records.get(ws, "web:2")
    assert failed.status == "failed" and "No space left on device" in (failed.reason or "")
    assert records.serving(ws, "web") == records.get(ws, "web:1")
    assert _score_http(good.endpoint_http) == 1  # the previous revision still answers
    live = api.status("web", workspace=ws)["live"]
    assert live["serving"] == "web:1" and list(live["backends"]) == ["web:1"]
