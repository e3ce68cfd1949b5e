"""The role distributions installed alone, as a scoring image and a device install them.

A clean virtual environment (no system site-packages) gets ``./core`` and
``./runtime`` built and installed from this checkout, with their declared
third-party requirements from the package index, and nothing else: it serves a
model, and no trainer, packager, CLI, collector, Docker, Kubernetes, Typer or
scikit-learn module can even be found there. Then ``./edge-agent`` is added, as
on a device, and the agent starts. A missing dependency declaration fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.runtime import toy_models
from tests.services import free_port, require

ROOT = Path(__file__).resolve().parents[1]
FOREIGN = [
    "amlpkg.trainer",
    "amlpkg.packager",
    "amlpkg.cli",
    "amlpkg.collector",
    "docker",
    "kubernetes",
    "typer",
    "sklearn",
    "skl2onnx",
    "torch",
]
pytestmark = pytest.mark.slow


def _copies(where: Path, *roles: str) -> list[str]:
    """The role folders copied out, so builds leave no ``build/`` in the checkout."""
    import shutil

    for role in roles:
        if not (where / role).exists():
            shutil.copytree(
                ROOT / role,
                where / role,
                ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
            )
    return [str(where / role) for role in roles]


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "--disable-pip-version-check",
            "install",
            "-q",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=ROOT,
    )
    # No index (an offline laptop) is a missing service; anything else is a failure.
    unreachable = "Could not find a version" in done.stderr or "NewConnectionError" in done.stderr
    require(not unreachable, f"the package index is unreachable: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]


def _found(venv: Path, modules: list[str]) -> list[str]:
    code = (
        "import importlib.util, json, sys\n"
        "def found(m):\n"
        "    try:\n"
        "        return importlib.util.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        "print(json.dumps([m for m in sys.argv[1:] if found(m)]))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    return list(json.loads(out))


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("runtime-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # Non-editable builds of the two folders a scoring image installs.
    _pip(venv, *_copies(venv.parent, "core", "runtime"))
    yield venv


def test_the_runtime_alone_installs_nothing_of_training_or_infrastructure(
    runtime_venv: Path,
) -> None:
    assert _found(runtime_venv, ["amlpkg.runtime", "amlpkg.errors", "onnxruntime"]) == [
        "amlpkg.runtime",
        "amlpkg.errors",
        "onnxruntime",
    ]
    assert _found(runtime_venv, FOREIGN) == []


def test_the_runtime_alone_serves_a_model(runtime_venv: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    toy_models.save(toy_models.add_sub_model(width=4), repo, "add_sub")
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AMLPKG_"))}
    process = subprocess.Popen(
        [
            str(runtime_venv / "bin" / "python"),
            "-m",
            "amlpkg.runtime",
            "--model-repository",
            str(repo),
            "--http-port",
            str(port),
            "--grpc-port",
            str(grpc_port),
        ],
        cwd="/",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready") as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the runtime did not become ready in 60 s"
            time.sleep(0.2)
        x = [[1.0, 2.0, 3.0, 4.0]]
        body = {
            "inputs": [
                {"name": name, "datatype": "FP32", "shape": [1, 4], "data": x}
                for name in ("INPUT0", "INPUT1")
            ]
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/add_sub/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            outputs = {o["name"]: o["data"] for o in json.load(response)["outputs"]}
        np.testing.assert_allclose(outputs["OUTPUT0"], np.asarray(x).ravel() * 2)
        np.testing.assert_allclose(outputs["OUTPUT1"], [0.0] * 4)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


def test_a_device_adds_only_the_edge_agent(runtime_venv: Path) -> None:
    _pip(runtime_venv, *_copies(runtime_venv.parent, "core", "runtime", "edge-agent"))
    assert _found(runtime_venv, ["amlpkg.edge_agent", "azure.iot.device"]) == [
        "amlpkg.edge_agent",
        "azure.iot.device",
    ]
    assert _found(runtime_venv, FOREIGN) == []
    done = subprocess.run(
        [str(runtime_venv / "bin" / "amlpkg-edge-agent"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    assert "--standalone" in done.stdout
