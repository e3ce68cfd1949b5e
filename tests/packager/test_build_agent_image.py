"""``amlpkg build --flavor edge-agent``: the edge agent's own image, built by the real engine.

The recipe is checked as text; then the image is built on the locally made Debian
base, pushed to the local registry (127.0.0.1:5000) and run: the agent's command
line answers, it runs as the non-root user, its OCI client fetches a model from the
registry by digest inside the container, and an IoT Edge manifest made without
``--agent-image`` pins exactly the pushed digest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager import deploy as api
from amlpkg.packager.build.agent_image import (
    AGENT_COMMAND,
    AGENT_ROLES,
    STATE_DIR,
    agent_requirements,
    build_agent_image,
    newest_agent_image,
    render_agent_dockerfile,
)
from amlpkg.packager.build.api import build_image
from amlpkg.packager.build.flavors import requirement_name
from amlpkg.packager.build.options import BuildOptions
from amlpkg.packager.build.wheelhouse import amlpkg_wheel
from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.packager.oci.registry import MANIFEST, Reference, Registry, descriptor
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.registry import register
from tests.runtime import toy_models
from tests.services import REGISTRY, registry_available, require

AMLPKG = str(Path(sys.executable).parent / "amlpkg")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent") / "home"


@pytest.fixture(scope="module")
def wheels(home: Path) -> Path:
    """amlpkg-core, -runtime and -edge-agent wheels built from this checkout."""
    return amlpkg_wheel(home / "cache", roles=AGENT_ROLES)


def test_the_recipe_runs_the_agent_without_a_model() -> None:
    text = render_agent_dockerfile(
        base_image="debian:x", python_version="3.11", labels={"ai.amlpkg.component": "edge-agent"}
    )
    assert f"CMD {json.dumps(AGENT_COMMAND)}" in text
    assert "USER 10001:10001" in text and f"chown 10001:10001 {STATE_DIR}" in text
    assert "/models" not in text and "HEALTHCHECK" not in text
    assert "--no-index" in text and "import numpy" in text and "azure.iot.device" in text


def test_requirements_come_from_the_built_wheels(wheels: Path) -> None:
    names = {requirement_name(r) for r in agent_requirements(wheels)}
    # The agent's own, the runtime's signing extra, the CPU ONNX Runtime; no CLI, no trainer.
    assert {"azure-iot-device", "model-signing", "onnxruntime", "grpcio"} <= names
    assert not names & {"typer", "rich", "scikit-learn", "onnxruntime-gpu"}
    assert not any(n.startswith("amlpkg") for n in names)


def test_edge_agent_is_not_a_model_flavor(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "h") as ws, pytest.raises(InvalidArgumentError, match="agent"):
        build_image(ws, "m:1", BuildOptions(flavor="edge-agent"))
    done = subprocess.run(
        [AMLPKG, "build", "m:1", "--flavor", "edge-agent", "--home", str(tmp_path / "h")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "without a model" in done.stdout + done.stderr


@pytest.fixture(scope="module")
def agent(home: Path, wheels: Path, local_base_image: str) -> Iterator[Any]:
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    from amlpkg.packager.build.image import remove_image

    tag = f"{REGISTRY}/amlpkg-test/edge-agent:{uuid.uuid4().hex[:8]}"
    options = BuildOptions(
        flavor="edge-agent", base_image=local_base_image, tag=tag, push=True, amlpkg_wheel=wheels
    )
    with open_workspace(home) as ws:
        built = build_agent_image(ws, options)
    yield built
    remove_image(tag)


def _run(image: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "host", image, *argv],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_built_image_runs_the_agent(agent: Any) -> None:
    assert agent.repo_digest and agent.repo_digest.startswith(f"{REGISTRY}/amlpkg-test/edge-agent@")
    assert agent.labels["ai.amlpkg.component"] == "edge-agent"
    assert agent.platform == "linux/amd64"
    helped = _run(agent.repo_digest, "python", "-m", "amlpkg.edge_agent", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "amlpkg-edge-agent" in helped.stdout and "--standalone" in helped.stdout
    who = _run(agent.repo_digest, "sh", "-c", f"id -u; test -w {STATE_DIR} && echo writable")
    assert who.stdout.split() == ["10001", "writable"], who.stderr


def test_its_oci_client_fetches_a_model_by_digest(agent: Any) -> None:
    model = toy_models.add_sub_model(width=4).SerializeToString()
    where = Reference.parse(f"oci://{REGISTRY}/test/agent-fetch-{uuid.uuid4().hex[:8]}:v1")
    registry = Registry(where)
    try:
        registry.push_blob(model)
        registry.push_blob(b"{}")
        digest = registry.push_manifest(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
                "layers": [descriptor("application/vnd.cncf.model.weight.v1.raw", model)],
            }
        )
    finally:
        registry.close()
    sha = hashlib.sha256(model).hexdigest()
    pinned = f"oci://{where.host}/{where.repo}@{digest}"
    # What a Kubernetes init container of this image runs; then the file is checked.
    fetched = _run(
        agent.repo_digest, "sh", "-c",
        f"python -m amlpkg.edge_agent.oci {pinned} {sha} {STATE_DIR}/m/1"
        f" && sha256sum {STATE_DIR}/m/1/model.onnx",
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    assert sha in fetched.stdout
    refused = _run(
        agent.repo_digest, "python", "-m", "amlpkg.edge_agent.oci", pinned, "0" * 64, "/tmp/m"
    )
    assert refused.returncode == 2 and "no layer" in refused.stderr


def test_iotedge_manifest_pins_the_built_agent_by_digest(
    agent: Any, home: Path, tmp_path: Path
) -> None:
    with open_workspace(home) as ws:
        assert newest_agent_image(ws, "linux/amd64") == agent.repo_digest
        assert newest_agent_image(ws, "linux/arm64") is None
        _register(ws, tmp_path)
        plan = api.plan(
            "scorer:1", target="iotedge", name="plant", workspace=ws,
            options={"model_url": "https://x/m.onnx", "image": "r.example/s:1", "device_id": "d"},
        )  # fmt: skip
    content = json.loads(next(iter(plan.documents.values())))["modulesContent"]
    module = content["$edgeAgent"]["properties.desired"]["modules"][edge.AGENT_MODULE]
    assert module["settings"]["image"] == agent.repo_digest


def _register(ws: Workspace, folder: Path) -> None:
    path = toy_models.save(toy_models.mlp_model((4, 8, 3)), folder / "m", "scorer")
    register("scorer", path, workspace=ws)
