"""``amlpkg build --flavor edge-agent --builder oci``: the agent's multi-arch image without a
Docker engine, pushed to the local registry (127.0.0.1:5000) and read back through the
registry API; the amd64 image is pulled and run by the Docker engine.

One two-platform build is shared by the module; the reproducibility test builds once more
(the wheelhouses are cached by then, so it costs the layer writing only).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager import deploy as api
from amlpkg.packager.build.agent_image import (
    AGENT_COMMAND,
    AGENT_ROLES,
    STATE_DIR,
    AgentImage,
    newest_agent_image,
)
from amlpkg.packager.build.oci_builder.agent import build_oci_agent_image
from amlpkg.packager.build.oci_builder.build import OciOptions
from amlpkg.packager.build.oci_builder.elf import EM_AARCH64, EM_X86_64
from amlpkg.packager.build.oci_builder.registry_io import ImageRef
from amlpkg.packager.build.options import BuildOptions
from amlpkg.packager.build.wheelhouse import amlpkg_wheel
from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.packager.oci.registry import INDEX
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import register
from tests.packager.test_build_oci import _elf_machines, _layer_file, _platform_manifests, _registry
from tests.runtime import toy_models
from tests.services import REGISTRY, docker_available, registry_available, require

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass(frozen=True)
class AgentBuild:
    """The shared build and what made it."""

    built: AgentImage
    home: Path
    wheels: Path
    tag: str
    oci: OciOptions


def _build(home: Path, wheels: Path, tag: str, oci: OciOptions) -> AgentImage:
    options = BuildOptions(flavor="edge-agent", tag=tag, push=True, amlpkg_wheel=wheels)
    with open_workspace(home) as ws:
        return build_oci_agent_image(ws, options, oci)


@pytest.fixture(scope="module")
def agent_build(tmp_path_factory: pytest.TempPathFactory) -> AgentBuild:
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    require(shutil.which("debootstrap") is not None, "debootstrap is needed")
    home = tmp_path_factory.mktemp("oci-agent") / "home"
    # Built once: the same wheels for both builds (others may edit the checkout meanwhile).
    wheels = amlpkg_wheel(home / "cache", roles=AGENT_ROLES)
    tag = f"{REGISTRY}/amlpkg-test/oci-agent:{uuid.uuid4().hex[:8]}"
    oci = OciOptions(platforms=PLATFORMS, source_date_epoch=EPOCH, revision="test-revision")
    return AgentBuild(_build(home, wheels, tag, oci), home, wheels, tag, oci)


def test_an_index_of_both_platforms_running_the_agent(agent_build: AgentBuild) -> None:
    built = agent_build.built
    with _registry(agent_build.tag) as registry:
        index, digest = registry.manifest(ImageRef.parse(agent_build.tag).target)
        manifests = _platform_manifests(agent_build.tag)
        configs = {
            platform: json.loads(registry.blob_bytes(manifest["config"], 1 << 20))
            for platform, (_, manifest) in manifests.items()
        }
    assert index["mediaType"] == INDEX and set(manifests) == set(PLATFORMS)
    assert built.repo_digest == f"{REGISTRY}/amlpkg-test/oci-agent@{digest}"
    assert built.platform == ",".join(PLATFORMS)
    for platform, config in configs.items():
        inner = config["config"]
        assert config["architecture"] == platform.rsplit("/", 1)[-1]
        assert inner["Cmd"] == AGENT_COMMAND and inner["User"] == "10001:10001"
        assert f"AMLPKG_EDGE_CACHE={STATE_DIR}" in inner["Env"]
        assert "Healthcheck" not in inner and "ExposedPorts" not in inner
        assert inner["Labels"]["ai.amlpkg.component"] == "edge-agent"
        assert inner["Labels"]["ai.amlpkg.platform"] == platform
    # The agent's code and state folder are the same bytes on both platforms.
    tails = {tuple(layer["digest"] for layer in m["layers"][-2:]) for _, m in manifests.values()}
    assert len(tails) == 1


def test_arm64_binaries_are_aarch64_elf_files(agent_build: AgentBuild, tmp_path: Path) -> None:
    manifests = _platform_manifests(agent_build.tag)
    for platform, want in (("linux/arm64", EM_AARCH64), ("linux/amd64", EM_X86_64)):
        _, manifest = manifests[platform]
        venv_layer = manifest["layers"][-3]
        venv = _elf_machines(_layer_file(agent_build.tag, venv_layer, tmp_path / platform[6:]))
        assert len(venv) > 10, platform
        assert set(venv.values()) == {want}, platform
        assert any("onnxruntime/capi/onnxruntime_pybind11_state" in name for name in venv)
        assert any("cryptography/hazmat/bindings/_rust" in name for name in venv)


def test_the_state_folder_belongs_to_the_agent_user(
    agent_build: AgentBuild, tmp_path: Path
) -> None:
    _, manifest = _platform_manifests(agent_build.tag)["linux/arm64"]
    layer = _layer_file(agent_build.tag, manifest["layers"][-2], tmp_path / "state")
    with tarfile.open(layer, "r:gz") as archive:
        owners = {m.name: (m.uid, m.mtime) for m in archive.getmembers()}
    assert owners[STATE_DIR.strip("/")] == (10001, EPOCH)
    assert owners["var"] == (0, EPOCH)


def test_the_same_build_twice_gives_the_same_digest(agent_build: AgentBuild) -> None:
    again = _build(agent_build.home, agent_build.wheels, agent_build.tag, agent_build.oci)
    assert again.repo_digest == agent_build.built.repo_digest


def test_referrers_carry_the_sbom_and_the_provenance(agent_build: AgentBuild) -> None:
    digest, _ = _platform_manifests(agent_build.tag)["linux/arm64"]
    with _registry(agent_build.tag) as registry:
        found = {r["artifactType"]: r for r in registry.referrers(digest)}
        documents = {}
        for kind, ref in found.items():
            attached, _ = registry.manifest(ref["digest"])
            assert attached["subject"]["digest"] == digest
            documents[kind] = json.loads(registry.blob_bytes(attached["layers"][0], 1 << 22))
    bom = documents["application/vnd.cyclonedx+json"]
    names = {c["name"].lower() for c in bom["components"]}
    assert {"azure-iot-device", "model-signing", "onnxruntime", "amlpkg-edge-agent"} <= names
    assert not any(c["type"] == "machine-learning-model" for c in bom["components"])
    statement = documents["application/vnd.in-toto+json"]
    assert statement["subject"][0]["digest"]["sha256"] == digest.removeprefix("sha256:")
    build = statement["predicate"]["buildDefinition"]
    assert build["externalParameters"]["flavor"] == "edge-agent"
    assert build["externalParameters"]["platform"] == "linux/arm64"


def test_iotedge_manifest_pins_the_index_by_digest(agent_build: AgentBuild, tmp_path: Path) -> None:
    with open_workspace(agent_build.home) as ws:
        for platform in PLATFORMS:
            assert newest_agent_image(ws, platform) == agent_build.built.repo_digest
        path = toy_models.save(toy_models.mlp_model((4, 8, 3)), tmp_path / "m", "scorer")
        register("scorer", path, workspace=ws)
        plan = api.plan(
            "scorer:1", target="iotedge", name="plant", workspace=ws,
            options={"model_url": "https://x/m.onnx", "image": "r.example/s:1",
                     "device_id": "d", "platform": "linux/arm64"},
        )  # fmt: skip
    content = json.loads(next(iter(plan.documents.values())))["modulesContent"]
    module = content["$edgeAgent"]["properties.desired"]["modules"][edge.AGENT_MODULE]
    assert module["settings"]["image"] == agent_build.built.repo_digest


def test_docker_runs_the_amd64_agent(agent_build: AgentBuild) -> None:
    require(docker_available(), "a Docker engine is needed")
    image = agent_build.built.repo_digest
    assert image is not None
    done = subprocess.run(
        ["docker", "run", "--rm", image, "sh", "-c",
         f"python -m amlpkg.edge_agent --help && id -u && test -w {STATE_DIR} && echo writable"
         " && python -c 'import model_signing.verifying, azure.iot.device'"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "amlpkg-edge-agent" in done.stdout
    assert done.stdout.split()[-2:] == ["10001", "writable"]


def test_cli_refuses_an_agent_build_it_cannot_push(tmp_path: Path) -> None:
    from amlpkg.cli.app import app

    home = ["--home", str(tmp_path / "h")]
    result = CliRunner().invoke(app, ["build", "--flavor", "edge-agent", "--builder", "oci", *home])
    assert isinstance(result.exception, InvalidArgumentError)
    assert "--tag" in result.exception.message
    with open_workspace(tmp_path / "h") as ws, pytest.raises(InvalidArgumentError, match="agent"):
        from amlpkg.packager.build.oci_builder.build import build_oci_image

        build_oci_image(ws, "m:1", BuildOptions(flavor="edge-agent", tag=f"{REGISTRY}/x:1"))
