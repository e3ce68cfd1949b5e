"""`amlpkg deploy` and `amlpkg deployments ...` as a subprocess, on a real local deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import register
from tests.runtime import toy_models

AMLPKG = str(Path(sys.executable).parent / "amlpkg")


def _cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [AMLPKG, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "COLUMNS": "250"},  # Rich must not wrap what is asserted
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    with open_workspace(home) as ws:
        path = toy_models.save(toy_models.mlp_model((4, 8, 3)), tmp_path / "m", "scorer")
        register("scorer", path, workspace=ws)
    yield home
    _cli(home, "deployments", "delete", "web", check=False)


def test_deploy_show_status_lineage_delete(home: Path) -> None:
    deployed = json.loads(
        _cli(home, "deploy", "scorer:1", "-t", "local", "-n", "web", "--json").stdout
    )
    assert deployed["status"] == "ready" and deployed["id"] == "web:1"
    shown = json.loads(_cli(home, "deployments", "show", "web", "--json").stdout)
    http, grpc = shown["endpoints"]["http"], shown["endpoints"]["grpc"]
    assert http.startswith("http://127.0.0.1:") and grpc.startswith("127.0.0.1:")
    assert [row["id"] for row in shown["history"]] == ["web:1"]
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 1, 2, 3]}]}
    scored = httpx.post(f"{http}/v2/models/scorer/infer", json=body, timeout=10).json()
    assert scored["outputs"][0]["shape"] == [1, 3]

    listed = json.loads(_cli(home, "deployments", "list", "--json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [("web", "ready")]
    status = json.loads(_cli(home, "deployments", "status", "web", "--json").stdout)
    assert status["live"]["ready"] is True
    tree = _cli(home, "lineage", "scorer:1").stdout
    assert "deployment web:1" in tree
    assert f"local, ready, http {http} grpc {grpc}" in tree

    out = _cli(home, "deployments", "delete", "web").stdout
    assert "web:1 stopped: deleted" in out
    assert json.loads(_cli(home, "deployments", "show", "web", "--json").stdout)["serving"] is None


def test_errors_exit_2_with_a_hint(home: Path) -> None:
    done = _cli(home, "deploy", "scorer:7", "-n", "web", check=False)
    assert done.returncode == 2 and "error:" in done.stderr
    done = _cli(home, "deploy", "scorer:1", "-n", "web", "-t", "mars", check=False)
    assert done.returncode == 2 and "unknown deployment target" in done.stderr
    done = _cli(home, "deployments", "rollback", "nothing", check=False)
    assert done.returncode == 2 and "hint:" in done.stderr


def test_dry_run_prints_valid_manifests(home: Path, tmp_path: Path) -> None:
    image = "127.0.0.1:5000/scorer:1"
    text = _cli(
        home, "deploy", "scorer:1", "-t", "kubernetes", "-n", "web", "--image", image, "--dry-run"
    ).stdout
    objects = list(yaml.safe_load_all(text))
    assert objects[0]["kind"] == "Deployment"
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    edge = _cli(
        home,
        "deploy",
        "scorer:1",
        "-t",
        "iotedge",
        "-n",
        "web",
        "--image",
        image,
        "--platform",
        "linux/arm64",
        "--model-url",
        "https://example.com/m.onnx",
        "--agent-image",
        "example.com/amlpkg-edge-agent@sha256:" + "ab" * 32,
        "--output",
        str(tmp_path / "out"),
    )
    assert "web.deployment.json" in edge.stdout
    manifest = json.loads((tmp_path / "out" / "web.deployment.json").read_text())
    assert "$edgeAgent" in manifest["modulesContent"]
    # A dry run records nothing.
    assert json.loads(_cli(home, "deployments", "list", "--json").stdout) == []


def test_options_are_typed_per_target_and_foreign_flags_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from amlpkg.cli.deploy import _typed_options
    from amlpkg.errors import InvalidArgumentError
    from amlpkg.packager.deploy.options import DockerOptions, LocalOptions

    params = {
        "source": "scorer:1",
        "name": "web",
        "target": "local",
        "port": 8080,
        "cpus": 2.0,
        "ready_timeout": 5.0,
        "kserve": False,
        "no_wait": False,
        "iothub_connection_string": "HostName=x;SharedAccessKey=y",  # from the environment
    }
    local = _typed_options("local", params)
    assert isinstance(local, LocalOptions) and (local.port, local.ready_timeout_s) == (8080, 5.0)
    assert local.recorded() == {"port": 8080, "ready_timeout_s": 5.0}
    assert "--cpus is not a local option; ignored" in capsys.readouterr().err
    docker = _typed_options("docker", {**params, "target": "docker"})
    assert isinstance(docker, DockerOptions) and docker.cpus == 2.0
    with pytest.raises(InvalidArgumentError, match="port"):
        _typed_options("local", {**params, "port": 70000})


def test_the_canary_flag_becomes_the_kubernetes_canary_share() -> None:
    from amlpkg.cli.deploy import _typed_options
    from amlpkg.packager.deploy.options import KubernetesOptions

    params = {"source": "scorer:1", "name": "web", "target": "kubernetes", "canary": 10.0,
              "kserve": False, "no_wait": False, "iothub_connection_string": None}  # fmt: skip
    options = _typed_options("kubernetes", params)
    assert isinstance(options, KubernetesOptions) and options.canary_percent == 10.0
