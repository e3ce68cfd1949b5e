"""``amlpkg build --builder oci``: real builds pushed to the local registry (127.0.0.1:5000),
inspected through the registry API, and the amd64 image pulled and run by the Docker engine.

One multi-arch build is shared by the module; the reproducibility test builds once more.
The arm64 side needs the arm64 base, made here from Debian's packages without emulation.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.oci_builder.build import OciOptions, build_oci_image
from amlpkg.packager.build.oci_builder.elf import EM_AARCH64, EM_X86_64, elf_machine
from amlpkg.packager.build.oci_builder.layers import LAYER_GZIP
from amlpkg.packager.build.oci_builder.registry_io import CONFIG_TYPE, ImageRef, OciRegistry
from amlpkg.packager.build.options import BuildOptions
from amlpkg.packager.build.records import Package, list_packages
from amlpkg.packager.oci.registry import INDEX, MANIFEST
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import get_model_version
from tests.packager.conftest import TrainedModel
from tests.services import REGISTRY, docker_available, registry_available, require

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass(frozen=True)
class OciBuild:
    """The shared build: its package row, tag and build options."""

    package: Package
    tag: str
    options: BuildOptions
    oci: OciOptions


def _build(trained: TrainedModel, tag: str, oci: OciOptions) -> tuple[Package, BuildOptions]:
    options = BuildOptions(tag=tag, amlpkg_wheel=trained.amlpkg_wheel)
    with open_workspace(trained.home) as ws:
        return build_oci_image(ws, trained.ref, options, oci), options


@pytest.fixture(scope="module")
def oci_build(trained_model: TrainedModel) -> OciBuild:
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    # Both bases are made in the registry from Debian's packages when it lacks them.
    require(shutil.which("debootstrap") is not None, "debootstrap is needed")
    tag = f"{REGISTRY}/amlpkg-test/oci-iris:{uuid.uuid4().hex[:8]}"
    oci = OciOptions(platforms=PLATFORMS, source_date_epoch=EPOCH, revision="test-revision")
    package, options = _build(trained_model, tag, oci)
    return OciBuild(package, tag, options, oci)


def _registry(tag: str) -> OciRegistry:
    return OciRegistry(ImageRef.parse(tag))


def _platform_manifests(tag: str) -> dict[str, tuple[str, dict[str, Any]]]:
    with _registry(tag) as registry:
        index, _ = registry.manifest(ImageRef.parse(tag).target)
        return {
            f"{m['platform']['os']}/{m['platform']['architecture']}": (
                m["digest"],
                registry.manifest(m["digest"])[0],
            )
            for m in index["manifests"]
        }


def _layer_file(tag: str, desc: dict[str, Any], dest: Path) -> Path:
    with _registry(tag) as registry:
        registry.blob_to(desc, dest, 4 * 1024**3)
    return dest


def _elf_machines(layer: Path) -> dict[str, int]:
    machines: dict[str, int] = {}
    with tarfile.open(layer, "r|gz") as archive:
        for info in archive:
            if info.isreg():
                handle = archive.extractfile(info)
                machine = elf_machine(handle.read(20)) if handle is not None else None
                if machine is not None:
                    machines[info.name] = machine
    return machines


def test_the_same_build_twice_gives_the_same_digest(
    oci_build: OciBuild, trained_model: TrainedModel
) -> None:
    again, _ = _build(trained_model, oci_build.tag, oci_build.oci)
    assert again.repo_digest == oci_build.package.repo_digest
    assert (
        again.labels["ai.amlpkg.oci.platforms"]
        == oci_build.package.labels["ai.amlpkg.oci.platforms"]
    )


def test_index_lists_both_platforms_and_every_media_type_is_oci(oci_build: OciBuild) -> None:
    with _registry(oci_build.tag) as registry:
        index, digest = registry.manifest(ImageRef.parse(oci_build.tag).target)
    assert index["mediaType"] == INDEX
    assert oci_build.package.repo_digest == f"{REGISTRY}/amlpkg-test/oci-iris@{digest}"
    manifests = _platform_manifests(oci_build.tag)
    assert set(manifests) == set(PLATFORMS)
    bases = set()
    for _, manifest in manifests.values():
        assert manifest["mediaType"] == MANIFEST
        assert manifest["config"]["mediaType"] == CONFIG_TYPE
        assert {layer["mediaType"] for layer in manifest["layers"]} == {LAYER_GZIP}
        bases.add(manifest["annotations"]["org.opencontainers.image.base.digest"])
    assert len(bases) == 2  # one base per platform, each pinned by digest
    # amlpkg's runtime and the model are the same bytes on both platforms.
    tails = {tuple(layer["digest"] for layer in m["layers"][-2:]) for _, m in manifests.values()}
    assert len(tails) == 1


def test_arm64_binaries_are_aarch64_elf_files(oci_build: OciBuild, tmp_path: Path) -> None:
    manifests = _platform_manifests(oci_build.tag)
    for platform, want in (("linux/arm64", EM_AARCH64), ("linux/amd64", EM_X86_64)):
        _, manifest = manifests[platform]
        base_layer, venv_layer = manifest["layers"][0], manifest["layers"][-3]
        venv = _elf_machines(_layer_file(oci_build.tag, venv_layer, tmp_path / "venv"))
        assert len(venv) > 10, platform  # onnxruntime, numpy, grpc, ... extension modules
        assert set(venv.values()) == {want}, platform
        assert any("onnxruntime/capi/onnxruntime_pybind11_state" in name for name in venv)
        base = _elf_machines(_layer_file(oci_build.tag, base_layer, tmp_path / "base"))
        assert base["usr/bin/python3.11"] == want
        assert set(base.values()) == {want}, platform


def test_our_layers_are_normalized(oci_build: OciBuild, tmp_path: Path) -> None:
    _, manifest = _platform_manifests(oci_build.tag)["linux/amd64"]
    layer = _layer_file(oci_build.tag, manifest["layers"][-1], tmp_path / "model")
    raw = layer.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and raw[3] & 0x08 == 0  # gzip: mtime 0, no file name
    with (
        layer.open("rb") as raw_file,
        gzip.GzipFile(fileobj=raw_file) as unzipped,
        tarfile.open(fileobj=unzipped) as archive,
    ):
        members = archive.getmembers()
    assert [m.name for m in members][:2] == ["models", "models/iris-classifier"]
    assert all(m.mtime == EPOCH and m.uid == 0 and m.gid == 0 and not m.uname for m in members)


def test_the_build_is_recorded_for_deploy(oci_build: OciBuild, trained_model: TrainedModel) -> None:
    with open_workspace(trained_model.home) as ws:
        stored = {p.id: p for p in list_packages(ws)}[oci_build.package.id]
    assert stored.platform == ",".join(PLATFORMS)
    assert stored.image_ref == oci_build.tag
    assert stored.repo_digest == oci_build.package.repo_digest
    assert stored.labels["org.opencontainers.image.base.digest"].startswith("sha256:")
    assert stored.labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_referrers_carry_the_sbom_and_the_provenance(oci_build: OciBuild) -> None:
    digest, manifest = _platform_manifests(oci_build.tag)["linux/arm64"]
    with _registry(oci_build.tag) as registry:
        found = {r["artifactType"]: r for r in registry.referrers(digest)}
        assert set(found) >= {"application/vnd.cyclonedx+json", "application/vnd.in-toto+json"}
        documents = {}
        for kind, ref in found.items():
            attached, _ = registry.manifest(ref["digest"])
            assert attached["subject"]["digest"] == digest
            assert attached["artifactType"] == kind
            documents[kind] = json.loads(registry.blob_bytes(attached["layers"][0], 1 << 22))
    bom = documents["application/vnd.cyclonedx+json"]
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    by_name = {c["name"].lower(): c for c in bom["components"]}
    ort = by_name["onnxruntime"]
    assert ort["purl"] == f"pkg:pypi/onnxruntime@{ort['version']}"
    assert len(ort["hashes"][0]["content"]) == 64
    assert "amlpkg-runtime" in by_name
    base = next(c for c in bom["components"] if c["type"] == "container")
    assert base["version"] == manifest["annotations"]["org.opencontainers.image.base.digest"]
    statement = documents["application/vnd.in-toto+json"]
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0]["digest"]["sha256"] == digest.removeprefix("sha256:")


def test_docker_pulls_the_index_and_the_amd64_image_serves(
    oci_build: OciBuild, trained_model: TrainedModel, request: pytest.FixtureRequest
) -> None:
    require(docker_available(), "a Docker engine is needed")
    run_image = request.getfixturevalue("run_image")  # after the check: it opens a client
    import tritonclient.http as httpclient

    running = run_image(oci_build.package.repo_digest)
    version = get_model_version(trained_model.ref, home=trained_model.home)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{running.http_port}")
    try:
        spec = version.signature["inputs"][0]
        tensor = httpclient.InferInput(spec["name"], [3, 4], "FP32")
        tensor.set_data_from_numpy(np.ones((3, 4), dtype=np.float32), binary_data=True)
        result = client.infer(version.name, [tensor])
    finally:
        client.close()
    outputs = {o["name"] for o in result.get_response()["outputs"]}
    assert outputs and all(result.as_numpy(name).shape[0] == 3 for name in outputs)
    config = running.container.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Labels"]["ai.amlpkg.model.sha256"] == version.sha256
    assert running.container.image.attrs["Architecture"] == "amd64"


def test_cli_builds_with_the_oci_builder(trained_model: TrainedModel) -> None:
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    from amlpkg.cli.app import app

    tag = f"{REGISTRY}/amlpkg-test/oci-cli:{uuid.uuid4().hex[:8]}"
    base = ["build", trained_model.ref, "--home", str(trained_model.home), "--builder"]
    runner = CliRunner()
    bad = runner.invoke(app, [*base, "podman", "--tag", tag])
    assert isinstance(bad.exception, InvalidArgumentError)
    assert "--builder docker or --builder oci" in str(bad.exception.hint)
    untagged = runner.invoke(app, [*base, "oci"])
    assert isinstance(untagged.exception, InvalidArgumentError)
    assert "--tag" in untagged.exception.message
    result = runner.invoke(
        app,
        [*base, "oci", "--tag", tag, "--platform", "linux/amd64", "--json",
         "--amlpkg-wheel", str(trained_model.amlpkg_wheel)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout[result.stdout.index("{") :])
    assert shown["repo_digest"].startswith(f"{REGISTRY}/amlpkg-test/oci-cli@sha256:")
    assert shown["platform"] == "linux/amd64"
    with _registry(tag) as registry:
        manifest, _ = registry.manifest(ImageRef.parse(tag).target)
    assert manifest["mediaType"] == MANIFEST  # one platform: a manifest, no index


def test_skopeo_reads_the_index_and_each_platform(oci_build: OciBuild) -> None:
    """A second client (containers/image, as crane or oras would) sees the same image."""
    require(shutil.which("skopeo") is not None, "skopeo is needed (apt-get install skopeo)")
    where = f"docker://{oci_build.tag}"

    def skopeo(*args: str) -> bytes:
        return subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", *args, where],
            capture_output=True, check=True, timeout=120,
        ).stdout  # fmt: skip

    raw = skopeo("--raw")
    index_digest = (oci_build.package.repo_digest or "").split("@")[1]
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index_digest
    assert json.loads(raw)["mediaType"] == INDEX
    manifests = _platform_manifests(oci_build.tag)
    for arch in ("amd64", "arm64"):
        shown = json.loads(skopeo("--override-arch", arch, "--override-os", "linux"))
        assert shown["Architecture"] == arch and shown["Os"] == "linux"
        assert shown["Created"] == "2023-11-14T22:13:20Z"
        _, manifest = manifests[f"linux/{arch}"]
        assert (
            shown["Labels"]["org.opencontainers.image.base.digest"]
            == (manifest["annotations"]["org.opencontainers.image.base.digest"])
        )
        assert shown["Layers"] == [layer["digest"] for layer in manifest["layers"]]
