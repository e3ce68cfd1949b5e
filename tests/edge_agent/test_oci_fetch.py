"""The agent fetches ``oci://`` models through the real local registry's HTTP API.

A model is pushed as a raw layer of an OCI artifact (as ``amlpkg push`` does); the
agent resolves the pinned manifest, finds the layer that is the desired file, and
downloads it with resume. No Docker daemon is involved.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from amlpkg.edge_agent.desired import DesiredModel, parse_desired
from amlpkg.edge_agent.download import fetch_model
from amlpkg.edge_agent.oci import OciReference, model_blob_url
from amlpkg.errors import IntegrityError, InvalidArgumentError, NotFoundError
from amlpkg.packager.oci.registry import MANIFEST, Reference, Registry, descriptor
from tests.edge_agent.conftest import add_model, sha256
from tests.services import REGISTRY, registry_available, require


@pytest.fixture(autouse=True)
def _registry() -> None:
    require(registry_available(), f"no OCI registry at {REGISTRY}")


def _push(data: bytes, tag: str = "v1") -> str:
    """Push ``data`` as the one raw layer of an artifact; its pinned ``oci://`` reference."""
    where = Reference.parse(f"oci://{REGISTRY}/test/edge-{uuid.uuid4().hex[:8]}:{tag}")
    registry = Registry(where)
    try:
        registry.push_blob(data)
        registry.push_blob(b"{}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
            "layers": [descriptor("application/vnd.cncf.model.weight.v1.raw", data)],
        }
        digest = registry.push_manifest(manifest, tag=tag)
    finally:
        registry.close()
    return f"oci://{where.host}/{where.repo}@{digest}"


def _desired(data: bytes, oci: str) -> DesiredModel:
    return DesiredModel(name="m", version="1", sha256=sha256(data), oci=oci)


def test_pinned_reference_is_fetched_and_verified(tmp_path: Path) -> None:
    data = add_model(3.0)
    ref = _push(data)
    state = parse_desired(
        {"model": {"name": "m", "version": 1, "sha256": sha256(data), "oci": ref}}
    )
    assert state.model is not None
    path = fetch_model(state.model, tmp_path / "s", tmp_path / "c")
    assert path.read_bytes() == data
    assert path.name == f"{sha256(data)}.onnx"


def test_a_tag_reference_works_too(tmp_path: Path) -> None:
    data = add_model(4.0)
    pinned = OciReference.parse(_push(data, tag="edge"))
    by_tag = f"oci://{pinned.host}/{pinned.repo}:edge"
    assert fetch_model(_desired(data, by_tag), tmp_path / "s", tmp_path / "c").read_bytes() == data


def test_download_resumes_from_the_partial_file(tmp_path: Path) -> None:
    data = add_model(5.0) * 50
    ref = _push(data)
    desired = _desired(data, ref)
    staging = tmp_path / "s"
    staging.mkdir()
    part = staging / f"{desired.sha256}.part"
    part.write_bytes(data[:100])  # an earlier try stopped after 100 bytes
    assert fetch_model(desired, staging, tmp_path / "c").read_bytes() == data
    # A kept prefix that is wrong stays wrong: proof that only the rest was requested.
    other = tmp_path / "s2"
    other.mkdir()
    (other / f"{desired.sha256}.part").write_bytes(b"x" * 100)
    with pytest.raises(IntegrityError, match="sha256"):
        fetch_model(desired, other, tmp_path / "c2")


def test_an_artifact_without_the_desired_layer_is_refused(tmp_path: Path) -> None:
    ref = _push(add_model(6.0))
    wrong = _desired(add_model(7.0), ref)
    with pytest.raises(IntegrityError, match="no layer"):
        fetch_model(wrong, tmp_path / "s", tmp_path / "c")
    assert not (tmp_path / "c").exists() or list((tmp_path / "c").iterdir()) == []


def test_unknown_manifest_and_bad_references(tmp_path: Path) -> None:
    ref = OciReference.parse(_push(add_model(8.0)))
    missing = f"oci://{ref.host}/{ref.repo}@sha256:{'0' * 64}"
    with pytest.raises(NotFoundError, match="no manifest"):
        model_blob_url(missing, "a" * 64)
    with pytest.raises(InvalidArgumentError, match="not an OCI reference"):
        model_blob_url("oci://no host", "a" * 64)
    legacy = OciReference.parse(f"{ref.host}/{ref.repo}:v1")
    assert (legacy.host, legacy.repo, legacy.tag) == (ref.host, ref.repo, "v1")
    assert json.loads(json.dumps(legacy.blob_url("sha256:" + "b" * 64))).startswith("http://")
