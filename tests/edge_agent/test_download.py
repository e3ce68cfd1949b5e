"""Download with resume, digest and signature checks."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from amlpkg.edge_agent.desired import DesiredModel, parse_desired
from amlpkg.edge_agent.download import fetch_model
from amlpkg.errors import IntegrityError, InvalidArgumentError, UnavailableError
from tests.edge_agent.conftest import FileServer, add_model, sha256, write


def _desired(data: bytes, url: str, **extra: object) -> DesiredModel:
    return DesiredModel(name="m", version="1", sha256=sha256(data), url=url, **extra)  # type: ignore[arg-type]


def test_http_download_resumes_after_a_cut(tmp_path: Path, file_server: FileServer) -> None:
    data = add_model(1.0) * 20  # any bytes: only the digest matters here
    file_server.files["/m.onnx"] = data
    file_server.cut["/m.onnx"] = 100
    desired = _desired(data, file_server.url("/m.onnx"))
    # first try: the connection drops after 100 bytes; the partial file is kept
    with pytest.raises(UnavailableError, match="resumes"):
        fetch_model(desired, tmp_path / "staging", tmp_path / "cache")
    part = tmp_path / "staging" / f"{desired.sha256}.part"
    assert part.stat().st_size == 100
    path = fetch_model(desired, tmp_path / "staging", tmp_path / "cache")
    assert file_server.ranges == [None, "bytes=100-"]
    assert path.read_bytes() == data
    assert path.name == f"{desired.sha256}.onnx"


def test_file_url_and_cache_hit(tmp_path: Path) -> None:
    data = add_model(2.0)
    src = write(tmp_path, "src.onnx", data)
    desired = _desired(data, src.as_uri())
    first = fetch_model(desired, tmp_path / "s", tmp_path / "c")
    src.unlink()  # a second fetch must come from the verified cache
    assert fetch_model(desired, tmp_path / "s", tmp_path / "c") == first


def test_tampered_download_is_rejected_and_discarded(tmp_path: Path) -> None:
    good, bad = add_model(1.0), add_model(9.0)
    src = write(tmp_path, "src.onnx", bad)
    desired = _desired(good, src.as_uri())
    with pytest.raises(IntegrityError, match="sha256"):
        fetch_model(desired, tmp_path / "s", tmp_path / "c")
    assert list((tmp_path / "s").iterdir()) == []
    assert list((tmp_path / "c").iterdir()) == []


def test_signature_is_checked_when_a_key_is_configured(
    tmp_path: Path, signing_key: tuple[object, bytes]
) -> None:
    key, pem = signing_key
    data = add_model(1.0)
    src = write(tmp_path, "src.onnx", data)
    signature = base64.b64encode(key.sign(bytes.fromhex(sha256(data)))).decode()  # type: ignore[attr-defined]
    ok = _desired(data, src.as_uri(), signature=signature)
    assert fetch_model(ok, tmp_path / "s", tmp_path / "c", public_key_pem=pem).is_file()
    forged = _desired(data, src.as_uri(), signature=base64.b64encode(b"x" * 64).decode())
    with pytest.raises(IntegrityError, match="does not verify"):
        fetch_model(forged, tmp_path / "s2", tmp_path / "c2", public_key_pem=pem)
    unsigned = _desired(data, src.as_uri())
    with pytest.raises(IntegrityError, match="no signature"):
        fetch_model(unsigned, tmp_path / "s3", tmp_path / "c3", public_key_pem=pem)


def test_desired_properties_are_validated_with_a_hint() -> None:
    state = parse_desired(
        {
            "$version": 4,
            "model": {"name": "m", "version": 3, "sha256": "a" * 64, "url": "file:///x"},
        }
    )
    assert state.model is not None and state.model.version == "3"
    with pytest.raises(InvalidArgumentError, match="sha256"):
        parse_desired({"model": {"name": "m", "version": 1, "sha256": "zz", "url": "file:///x"}})
    with pytest.raises(InvalidArgumentError, match="url or oci"):
        parse_desired({"model": {"name": "m", "version": 1, "sha256": "a" * 64}})


def _push_oci_artifact(repo: str, tag: str, data: bytes) -> None:
    """Push ``data`` as the single layer of an OCI artifact through the registry API."""
    import hashlib
    import json
    import urllib.request

    from tests.services import REGISTRY

    def upload(blob: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        start = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/blobs/uploads/", method="POST")
        with urllib.request.urlopen(start, timeout=10) as response:
            location = response.headers["Location"]
        if location.startswith("/"):
            location = f"http://{REGISTRY}{location}"
        sep = "&" if "?" in location else "?"
        put = urllib.request.Request(
            f"{location}{sep}digest={digest}",
            blob,
            {"Content-Type": "application/octet-stream"},
            method="PUT",
        )
        urllib.request.urlopen(put, timeout=10).close()
        return digest

    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": upload(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.onnx.model",
                "digest": upload(data),
                "size": len(data),
            }
        ],
    }
    put = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}",
        json.dumps(manifest).encode(),
        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        method="PUT",
    )
    urllib.request.urlopen(put, timeout=10).close()


def test_oci_reference_downloads_the_model_layer(tmp_path: Path) -> None:
    from tests.services import REGISTRY, registry_available, require

    require(registry_available(), f"no OCI registry at {REGISTRY}")
    data = add_model(4.0)
    _push_oci_artifact("amlpkg-test/edge-model", "v1", data)
    desired = DesiredModel(
        name="m", version="1", sha256=sha256(data), oci=f"{REGISTRY}/amlpkg-test/edge-model:v1"
    )
    path = fetch_model(desired, tmp_path / "s", tmp_path / "c")
    assert path.read_bytes() == data
