"""Signed models as CNCF ModelPack artifacts in a real local registry (127.0.0.1:5000).

sign -> push -> pull -> verify; the pushed manifest read back raw shows ModelPack media
types and annotations, the signature and provenance are OCI 1.1 referrers of it; a
flipped byte in any pulled layer, a layer path escaping the folder, and a pull whose
blobs do not match their digests are refused, and the runtime keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from amlpkg.errors import IntegrityError
from amlpkg.packager.oci.modelpack import (
    ARTIFACT_TYPE,
    BUNDLE_TYPE,
    CONFIG_TYPE,
    PROVENANCE_TYPE,
    WEIGHT_CONFIG_RAW,
    WEIGHT_RAW,
    pull_model,
    push_model_version,
)
from amlpkg.packager.oci.registry import Reference, Registry, descriptor
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import ModelLoadError
from amlpkg.runtime.signing import SignatureError, Trust
from tests.services import registry_available, require
from tests.signing_helpers import make_keypair, signed_versions

REGISTRY = "127.0.0.1:5000"
AMLPKG = str(Path(sys.executable).parent / "amlpkg")


@pytest.fixture(autouse=True)
def _registry() -> None:
    require(registry_available(), f"no OCI registry at {REGISTRY}")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("oci")
    key, pub = make_keypair(root, "trusted")
    return root / "ws", pub, signed_versions(root / "ws", key)


def _repo() -> str:
    return f"oci://{REGISTRY}/test/adder-{uuid.uuid4().hex[:8]}"


def test_sign_push_pull_verify_round_trip(
    signed: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    home, pub, refs = signed
    pushed = push_model_version(refs[1], f"{_repo()}:v2", home=home)
    pulled = pull_model(pushed.reference, tmp_path / "1")
    assert sorted(pulled.files) == sorted([MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE])
    assert pulled.provenance is not None
    assert json.loads(pulled.provenance)["predicateType"] == "https://slsa.dev/provenance/v1"
    verified = Trust(pub).verify_folder(tmp_path / "1")
    assert verified.release.version == 2


def test_the_pushed_manifest_has_modelpack_media_types(
    signed: tuple[Path, Path, list[str]],
) -> None:
    home, _, refs = signed
    pushed = push_model_version(refs[1], f"{_repo()}:v2", home=home)
    where = Reference.parse(pushed.reference)
    base = f"http://{REGISTRY}/v2/{where.repo}"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    manifest = httpx.get(f"{base}/manifests/{pushed.digest}", headers=accept).json()
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    layers = {x["annotations"]["org.cncf.model.filepath"]: x for x in manifest["layers"]}
    assert layers[MODEL_FILE]["mediaType"] == WEIGHT_RAW
    assert layers[RELEASE_FILE]["mediaType"] == WEIGHT_CONFIG_RAW
    assert all(
        x["annotations"]["org.opencontainers.image.title"] == name for name, x in layers.items()
    )
    notes = manifest["annotations"]
    assert {"dev.amlpkg.opset", "dev.amlpkg.providers", "dev.amlpkg.quantization"} <= set(notes)
    assert notes["dev.amlpkg.signature"].startswith("key:sha256:")
    assert "dev.amlpkg.accuracy" in notes
    index = httpx.get(
        f"{base}/manifests/{pushed.digest.replace(':', '-')}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    ).json()
    kinds = {m["artifactType"] for m in index["manifests"]}
    assert kinds == {BUNDLE_TYPE, PROVENANCE_TYPE}
    for entry in index["manifests"]:
        referrer = httpx.get(f"{base}/manifests/{entry['digest']}", headers=accept).json()
        assert referrer["subject"]["digest"] == pushed.digest


@pytest.mark.parametrize("layer", [MODEL_FILE, RELEASE_FILE])
def test_a_flipped_byte_in_any_layer_is_refused_and_the_old_model_serves(
    signed: tuple[Path, Path, list[str]], tmp_path: Path, layer: str
) -> None:
    home, pub, refs = signed
    pushed = push_model_version(refs[1], f"{_repo()}:v2", home=home)
    good = tmp_path / "repo" / "adder" / "1"
    pull_model(pushed.reference, good)
    bad = tmp_path / "bad"
    pull_model(pushed.reference, bad)
    data = bytearray((bad / layer).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bad / layer).write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="Hash mismatch"):
        Trust(pub).verify_folder(bad)

    async def runtime() -> None:
        dp = DataPlane.from_repository(tmp_path / "repo", trust=Trust(pub))
        await dp.start()
        try:
            files = {f"file:1/{p.name}": p.read_bytes() for p in bad.iterdir()}
            with pytest.raises(ModelLoadError, match="Hash mismatch"):
                await dp.load_model("adder", files)
            meta = await dp.model_metadata("adder")
            assert meta.parameters["signed_version"] == "2"
        finally:
            await dp.stop()

    asyncio.run(runtime())


def test_layer_paths_and_digests_from_the_registry_are_not_trusted(tmp_path: Path) -> None:
    where = Reference.parse(f"{_repo()}:evil")
    registry = Registry(where)
    try:
        payload = b"not a model"
        registry.push_blob(payload)
        registry.push_blob(b"{}")
        layer = descriptor(
            WEIGHT_RAW, payload, annotations={"org.cncf.model.filepath": "../escape.onnx"}
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": ARTIFACT_TYPE,
            "config": descriptor(CONFIG_TYPE, b"{}"),
            "layers": [layer],
        }
        digest = registry.push_manifest(manifest, tag="evil")
        with pytest.raises(IntegrityError, match="refused"):
            pull_model(f"oci://{REGISTRY}/{where.repo}@{digest}", tmp_path / "out")
        assert not (tmp_path / "escape.onnx").exists()
        # A descriptor whose digest is not its bytes' is refused before the file is kept.
        wrong = {**layer, "size": len(payload) + 1}
        with pytest.raises(IntegrityError):
            registry.blob_to(wrong, tmp_path / "blob", 1024)
        assert not (tmp_path / "blob").exists()
    finally:
        registry.close()


def test_cli_push_and_pull_with_trust(signed: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    home, pub, refs = signed
    env = {**os.environ, "AMLPKG_HOME": str(home)}

    def amlpkg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AMLPKG, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    done = amlpkg("push", refs[0], f"{_repo()}:v1", "--json")
    assert done.returncode == 0, done.stderr
    reference = json.loads(done.stdout)["reference"]
    done = amlpkg("pull", reference, "-o", str(tmp_path / "v"), "--trust", str(pub), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signed_version"] == "1"
