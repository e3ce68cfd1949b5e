"""``oci://`` model sources for ``amlpkg deploy``, against the real local registry (127.0.0.1:5000).

A signed ModelPack artifact (``amlpkg push``) is deployed on ``local`` (real supervisor
and runtime processes), its signature verified with ``--trust``; a modelcar image
(made layer by layer through the registry API: no Docker daemon) is unpacked safely;
IoT Edge manifests name the pinned artifact for the agent, or run an image that
carries the model without any download; Kubernetes gets KServe's modelcar storage URI
or an init container. Images are hand-made manifests pushed with the registry API, so
nothing here needs a container engine.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from amlpkg.edge_agent.desired import parse_desired
from amlpkg.edge_agent.download import fetch_model
from amlpkg.edge_agent.verify import verify_desired
from amlpkg.errors import (
    AmlpkgError,
    FailedPreconditionError,
    IntegrityError,
    InvalidArgumentError,
)
from amlpkg.packager import deploy as api
from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.packager.deploy import k8s_manifests as k8s
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.sources import materialize_repository, resolve_source
from amlpkg.packager.oci.modelpack import push_model_version
from amlpkg.packager.oci.registry import MANIFEST, Reference, Registry, descriptor
from amlpkg.runtime.signing import SignatureError, Trust
from amlpkg.store.lineage_edges import edges_to
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.registry import register
from tests.runtime import toy_models
from tests.services import REGISTRY, registry_available, require
from tests.signing_helpers import make_keypair, signed_versions

IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(autouse=True)
def _registry() -> None:
    require(registry_available(), f"no OCI registry at {REGISTRY}")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A workspace with two signed versions of ``adder``, v2 pushed as a ModelPack."""
    root = tmp_path_factory.mktemp("oci-deploy")
    key, pub = make_keypair(root, "trusted")
    _, other = make_keypair(root, "other")
    refs = signed_versions(root / "ws", key)
    tag = f"oci://{REGISTRY}/test/deploy-{uuid.uuid4().hex[:8]}:v2"
    pushed = push_model_version(refs[1], tag, home=root / "ws")
    return {"home": root / "ws", "pub": pub, "other": other, "tag": tag, "pushed": pushed}


def _repo(prefix: str) -> Reference:
    return Reference.parse(f"oci://{REGISTRY}/test/{prefix}-{uuid.uuid4().hex[:8]}:v1")


def _tar_gz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return gzip.compress(raw.getvalue())


def _diff_id(layer: bytes) -> str:
    try:
        return "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    except OSError:  # not gzip (a test's broken layer): its own digest
        return "sha256:" + hashlib.sha256(layer).hexdigest()


def push_image(where: Reference, layers: list[bytes], labels: dict[str, str]) -> str:
    """An OCI image (config + gzip layers) pushed by the API; ``HOST/REPO:TAG``."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {
                "type": "layers",
                "diff_ids": [_diff_id(layer) for layer in layers],
            },
        }
    ).encode()
    registry = Registry(where)
    try:
        for blob in (config, *layers):
            registry.push_blob(blob)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": descriptor(IMAGE_CONFIG, config),
            "layers": [descriptor(LAYER, layer) for layer in layers],
        }
        registry.push_manifest(manifest, tag=where.tag)
    finally:
        registry.close()
    return f"{where.host}/{where.repo}:{where.tag}"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace that has never seen the pushed model (deployments deleted after)."""
    with open_workspace(tmp_path / "other") as workspace:
        yield workspace
        for record in records.latest_per_name(workspace):
            with contextlib.suppress(AmlpkgError):
                api.delete(record.name, workspace=workspace)


def test_local_deploy_of_a_signed_modelpack_source(
    signed: dict[str, Any], fresh: Workspace
) -> None:
    pinned = signed["pushed"].reference
    record = api.deploy(
        signed["tag"], target="local", name="from-oci", options={"trust": signed["pub"]},
        workspace=fresh,
    )  # fmt: skip
    assert record.status == "ready"
    # The tag was resolved once: record, rollback and lineage name the digest.
    assert record.config["source"] == pinned and record.package == pinned
    assert record.model is None  # this workspace has no such version registered
    ready = httpx.get(f"{record.endpoint_http}/v2/models/adder/versions/2/ready", timeout=5)
    assert ready.status_code == 200
    into = [(e.src_kind, e.src_id) for e in edges_to(fresh, ("deployment", record.id))]
    assert ("package", pinned) in into


def test_a_signature_from_another_key_is_refused_before_anything_runs(
    signed: dict[str, Any], fresh: Workspace
) -> None:
    with pytest.raises(SignatureError):
        api.deploy(
            signed["tag"], target="local", name="refused", options={"trust": signed["other"]},
            workspace=fresh,
        )  # fmt: skip
    assert records.latest_per_name(fresh) == []
    with pytest.raises(InvalidArgumentError, match="oci:// sources"):
        resolve_source(fresh, "adder:2", trust=signed["pub"])


def test_the_registered_version_is_linked_to_the_artifact(signed: dict[str, Any]) -> None:
    with open_workspace(signed["home"]) as ws:
        source = resolve_source(ws, signed["tag"])
        assert source.model is not None and source.model.ref == "adder:2"
        assert source.oci is not None and source.oci.sha256 == source.model.sha256
        into = [(e.src_kind, e.src_id) for e in edges_to(ws, ("package", source.text))]
        assert into == [("model_version", "adder:2")]


def test_a_modelcar_image_is_unpacked_safely(tmp_path: Path, fresh: Workspace) -> None:
    model = toy_models.save(toy_models.mlp_model((4, 8, 3)), tmp_path / "m", "scorer").read_bytes()
    base = _tar_gz({"etc/os-release": b"x\n"})
    models = _tar_gz(
        {"models/scorer/3/model.onnx": model, "models/../evil": b"no", "models/.wh.x": b"no"},
        links={"models/scorer/3/link": "/etc/passwd"},
    )
    image = push_image(_repo("modelcar"), [base, models], {})
    source = resolve_source(fresh, f"oci://{image}")
    assert source.oci is not None and source.oci.kind == "image"
    assert (source.oci.name, source.oci.version) == ("scorer", "3")
    assert source.oci.sha256 == hashlib.sha256(model).hexdigest()
    files = sorted(p.name for p in source.oci.repository.rglob("*") if p.is_file())
    assert files == ["model.onnx"]  # no link, whiteout or path outside models/
    assert source.image == source.oci.image and "@sha256:" in source.oci.image
    _, name, signature = materialize_repository(source, tmp_path / "deploy")
    assert name == "scorer" and signature["inputs"]
    with pytest.raises(SignatureError, match="carries no signature"):
        resolve_source(fresh, f"oci://{image}", trust=tmp_path / "none.pub")
    # Labels that disagree with the bytes inside are refused.
    lying = push_image(
        _repo("modelcar"), [models],
        {"ai.amlpkg.model.name": "scorer", "ai.amlpkg.model.version": "3",
         "ai.amlpkg.model.sha256": "0" * 64},
    )  # fmt: skip
    with pytest.raises(AmlpkgError, match="labelled"):
        resolve_source(fresh, f"oci://{lying}")
    # A layer that is no tar archive, and a config that is no JSON: refused, not a crash.
    junk = push_image(_repo("modelcar"), [b"\x28\xb5\x2f\xfd" + b"zstd?" * 10], {})
    with pytest.raises(IntegrityError, match="not a tar archive"):
        resolve_source(fresh, f"oci://{junk}")
    # On IoT Edge an image source is the scoring module; another --image is refused.
    with pytest.raises(InvalidArgumentError, match="runs as the scoring module"):
        api.plan(
            f"oci://{image}", target="iotedge", name="plant", workspace=fresh,
            options={"image": "r.example/rt:1", "agent_image": _agent_image(), "device_id": "d"},
        )  # fmt: skip


def _agent_image() -> str:
    """A stand-in agent image pushed by tag (only its digest matters to the manifest)."""
    return push_image(_repo("agent"), [_tar_gz({"app/x": b"1"})], {})


def test_iotedge_devices_fetch_the_pinned_artifact_and_verify_it(
    signed: dict[str, Any], tmp_path: Path
) -> None:
    agent = _agent_image()
    options = {"agent_image": agent, "image": "127.0.0.1:5000/scorer:1", "device_id": "d1"}
    with open_workspace(signed["home"]) as ws:
        plan = api.plan(
            signed["tag"], target="iotedge", name="plant", options=options, workspace=ws
        )
    manifest = json.loads(next(iter(plan.documents.values())))
    content = manifest["modulesContent"]
    modules = content["$edgeAgent"]["properties.desired"]["modules"]
    pinned_agent = modules[edge.AGENT_MODULE]["settings"]["image"]
    assert pinned_agent.startswith(agent.rsplit(":", 1)[0] + "@sha256:")
    desired = parse_desired(content[edge.AGENT_MODULE]["properties.desired"]).model
    assert desired is not None and desired.oci == signed["pushed"].reference
    assert desired.url is None and desired.ref == "adder:2"
    # What the agent then does with it: fetch by digest, verify the signature.
    path = fetch_model(desired, tmp_path / "staging", tmp_path / "cache")
    verified = verify_desired(desired, path, Trust(signed["pub"]), tmp_path / "work", None)
    assert verified.release.model_sha256 == desired.sha256
    with open_workspace(signed["home"]) as ws, pytest.raises(InvalidArgumentError, match="fetch"):
        api.plan(
                signed["tag"], target="iotedge", name="plant",
                options={**options, "model_url": "https://x/m.onnx"}, workspace=ws,
            )  # fmt: skip


@pytest.fixture
def scorer(tmp_path: Path) -> Iterator[tuple[Workspace, bytes]]:
    with open_workspace(tmp_path / "home") as ws:
        path = toy_models.save(toy_models.mlp_model((4, 8, 3)), tmp_path / "m", "scorer")
        register("scorer", path, workspace=ws)
        yield ws, path.read_bytes()


def test_iotedge_image_that_carries_the_model_needs_no_model_url(
    scorer: tuple[Workspace, bytes],
) -> None:
    ws, model = scorer
    sha = hashlib.sha256(model).hexdigest()
    labels = {"ai.amlpkg.model.name": "scorer", "ai.amlpkg.model.version": "1",
              "ai.amlpkg.model.sha256": sha}  # fmt: skip
    image = push_image(_repo("scoring"), [_tar_gz({"models/scorer/1/model.onnx": model})], labels)
    options = {"image": image, "agent_image": _agent_image(), "device_id": "d1"}
    plan = api.plan("scorer:1", target="iotedge", name="plant", options=options, workspace=ws)
    content = json.loads(next(iter(plan.documents.values())))["modulesContent"]
    modules = content["$edgeAgent"]["properties.desired"]["modules"]
    scoring = modules["plant"]["settings"]["image"]
    assert scoring.startswith(image.rsplit(":", 1)[0] + "@sha256:")  # pinned by digest
    twin = content[edge.AGENT_MODULE]["properties.desired"]
    assert "model" not in twin and parse_desired(twin).model is None  # nothing to download
    binds = json.loads(modules[edge.AGENT_MODULE]["settings"]["createOptions"])["HostConfig"]
    assert binds["Binds"] == ["plant-image:/var/lib/amlpkg"]
    # An image with another model inside, or none, is refused with what to do.
    other = push_image(
        _repo("scoring"), [_tar_gz({"x": b"1"})], {**labels, "ai.amlpkg.model.sha256": "1" * 64}
    )
    with pytest.raises(InvalidArgumentError, match="not the deployed scorer:1"):
        api.plan("scorer:1", target="iotedge", name="plant",
                 options={**options, "image": other}, workspace=ws)  # fmt: skip
    bare = push_image(_repo("scoring"), [_tar_gz({"x": b"1"})], {})
    with pytest.raises(InvalidArgumentError, match="carries no model"):
        api.plan("scorer:1", target="iotedge", name="plant",
                 options={**options, "image": bare}, workspace=ws)  # fmt: skip


def test_iotedge_without_a_built_agent_image_says_how_to_build_one(
    scorer: tuple[Workspace, bytes],
) -> None:
    ws, _ = scorer
    options = {"model_url": "https://x/m.onnx", "image": "r.example/s:1", "device_id": "d1"}
    with pytest.raises(FailedPreconditionError, match="no edge agent image") as caught:
        api.plan("scorer:1", target="iotedge", name="plant", options=options, workspace=ws)
    assert "amlpkg build --flavor edge-agent" in (caught.value.hint or "")


def test_kubernetes_gets_the_modelcar_or_an_init_container(
    signed: dict[str, Any], fresh: Workspace
) -> None:
    model = (Path(__file__).parent / "__init__.py").read_bytes()  # any bytes: not served here
    car = push_image(_repo("modelcar"), [_tar_gz({"models/m/1/model.onnx": model})], {})
    runtime = "127.0.0.1:5000/amlpkg/runtime:1"
    kserve = api.plan(
        f"oci://{car}", target="kubernetes", name="web", workspace=fresh,
        options={"image": runtime, "kserve": True},
    )  # fmt: skip
    (isvc,) = list(yaml.safe_load_all(next(iter(kserve.documents.values()))))
    scoring = isvc["spec"]["predictor"]["containers"][0]
    (env,) = scoring["env"]
    assert env["name"] == "STORAGE_URI" and env["value"].startswith(f"oci://{car.split(':v1')[0]}@")
    assert "--model-repository" in scoring["args"] and k8s.MODEL_MOUNT in scoring["args"]
    assert "initContainers" not in isvc["spec"]["predictor"]
    agent = _agent_image()
    plain = api.plan(
        signed["tag"], target="kubernetes", name="web", workspace=fresh,
        options={"image": runtime, "agent_image": agent},
    )  # fmt: skip
    objects = list(yaml.safe_load_all(next(iter(plain.documents.values()))))
    deployment = objects[0]
    kubernetes_validate.validate(deployment, "1.33.0", strict=True)
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"].startswith(agent.rsplit(":", 1)[0] + "@sha256:")
    assert init["command"][:3] == ["python", "-m", "amlpkg.edge_agent.oci"]
    assert init["command"][3] == signed["pushed"].reference
    assert init["command"][5] == f"{k8s.MODEL_MOUNT}/adder/2"
    assert {"name": "model", "emptyDir": {}} in pod["volumes"]


def test_an_image_built_and_pushed_by_amlpkg_is_a_source(
    built_image: Any, trained_model: Any
) -> None:
    """The Docker-pushed scoring image (Docker manifest types) read back through the API."""
    repository = built_image.repo_digest.split("@")[0]
    tag = built_image.image_ref.rsplit(":", 1)[1]
    with open_workspace(trained_model.home) as ws:
        source = resolve_source(ws, f"oci://{repository}:{tag}")
        assert source.oci is not None and source.oci.kind == "image"
        assert source.model is not None and source.model.ref == trained_model.ref
        assert source.oci.image == built_image.repo_digest  # the engine's push digest
        plan = api.plan(
            source.text, target="iotedge", name="plant", workspace=ws,
            options={"agent_image": _agent_image(), "device_id": "d1"},
        )  # fmt: skip
    content = json.loads(next(iter(plan.documents.values())))["modulesContent"]
    scoring = content["$edgeAgent"]["properties.desired"]["modules"]["plant"]
    assert scoring["settings"]["image"] == built_image.repo_digest
    assert "model" not in content[edge.AGENT_MODULE]["properties.desired"]


def test_the_cli_takes_oci_sources_and_trust(signed: dict[str, Any], tmp_path: Path) -> None:
    amlpkg = str(Path(sys.executable).parent / "amlpkg")
    home = str(signed["home"])
    out = subprocess.run(
        [amlpkg, "deploy", signed["tag"], "-t", "iotedge", "-n", "plant", "--home", home,
         "--image", "r.example/scorer:1", "--agent-image", _agent_image(), "--device-id", "d",
         "--trust", str(signed["pub"]), "--dry-run"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    twin = json.loads(out.stdout)["modulesContent"][edge.AGENT_MODULE]["properties.desired"]
    assert twin["model"]["oci"] == signed["pushed"].reference
    refused = subprocess.run(
        [amlpkg, "deploy", signed["tag"], "-t", "local", "-n", "x", "--home", str(tmp_path / "h"),
         "--trust", str(signed["other"])],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "signature" in (refused.stdout + refused.stderr).lower()
