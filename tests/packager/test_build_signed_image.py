"""``amlpkg build --require-signature --trust KEY.pub``: an image whose runtime verifies.

The recipe parts are checked as pure functions; ONE real image is built with the Docker
engine from a signed version and run: the signed model serves, an unsigned model (and a
tampered one) loaded through the repository API is refused with 400.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager.build.api import build_image
from amlpkg.packager.build.flavors import SIGNING_EXTRA, get_flavor, runtime_requirements
from amlpkg.packager.build.image import inspect_image, remove_image
from amlpkg.packager.build.oci_builder.config import env_of
from amlpkg.packager.build.options import BuildOptions
from amlpkg.packager.build.recipe import TRUST_PATH, render_dockerfile
from amlpkg.packager.build.wheelhouse import installed_requires
from amlpkg.runtime.signing import Trust
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import get_model_version, register
from amlpkg.trainer.signing import sign_model_version
from tests.packager.conftest import TrainedModel
from tests.services import REGISTRY
from tests.signing_helpers import make_keypair


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in requirements}


def test_signing_extra_brings_model_signing_only_when_asked() -> None:
    plain = _names(runtime_requirements(installed_requires(), get_flavor("cpu")))
    signing = _names(
        runtime_requirements(installed_requires(), get_flavor("cpu"), (SIGNING_EXTRA,))
    )
    assert "model-signing" not in plain
    assert {"model-signing", "cryptography"} <= signing


def test_dockerfile_and_oci_config_turn_verification_on() -> None:
    flavor = get_flavor("cpu")
    text = render_dockerfile(
        base_image="b", flavor=flavor, python_version="3.11", labels={}, require_signature=True
    )
    assert 'ENV AMLPKG_SERVER_REQUIRE_SIGNATURE="true"' in text
    assert f'ENV AMLPKG_SERVER_TRUST="{TRUST_PATH}"' in text
    assert "model_signing.verifying" in text  # imported at build time: proves it installed
    plain = render_dockerfile(base_image="b", flavor=flavor, python_version="3.11", labels={})
    assert "REQUIRE_SIGNATURE" not in plain and "model_signing" not in plain
    env = env_of(flavor, "3.11", require_signature=True)
    assert env["AMLPKG_SERVER_REQUIRE_SIGNATURE"] == "true"
    assert env["AMLPKG_SERVER_TRUST"] == TRUST_PATH


def test_options_refuse_what_cannot_verify(tmp_path: Path) -> None:
    _, public = make_keypair(tmp_path, "k")
    with pytest.raises(InvalidArgumentError, match="needs --trust"):
        BuildOptions(require_signature=True).resolved()
    with pytest.raises(InvalidArgumentError, match="--require-signature"):
        BuildOptions(trust=public).resolved()
    with pytest.raises(InvalidArgumentError, match="--format image"):
        BuildOptions(format="dir", require_signature=True, trust=public).resolved()
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(InvalidArgumentError, match="neither a PEM public key"):
        BuildOptions(require_signature=True, trust=junk).resolved()
    ok = BuildOptions(require_signature=True, trust=public).resolved()
    assert ok.require_signature and ok.trust == public


def test_an_unsigned_model_is_refused_before_any_download(tmp_path: Path) -> None:
    from tests.packager.test_optimize import make_mlp

    _, public = make_keypair(tmp_path, "k")
    with open_workspace(tmp_path / "ws") as ws:
        register("plain", make_mlp(tmp_path / "m.onnx"), workspace=ws)
        options = BuildOptions(require_signature=True, trust=public, base_image="unused")
        with pytest.raises(FailedPreconditionError, match="plain:1 is not signed"):
            build_image(ws, "plain:1", options)
        assert not (ws.home / "cache" / "wheelhouse").exists()


@pytest.mark.slow
def test_image_requiring_signatures_serves_signed_and_refuses_unsigned(
    local_base_image: str, trained_model: TrainedModel, run_image: Any, tmp_path: Path
) -> None:
    key, public = make_keypair(tmp_path, "signer")
    other_key, _ = make_keypair(tmp_path, "other")
    with open_workspace(trained_model.home) as ws:
        # A model of its own: the session's iris version stays unsigned for other tests.
        iris = get_model_version(trained_model.ref, workspace=ws)
        source = ws.artifacts.verified_path(iris.sha256)
        version = register("signed-iris", source, workspace=ws)
        sign_model_version(version.ref, key, workspace=ws)
        other = register("signed-iris", source, workspace=ws, description="other key")
        sign_model_version(other.ref, other_key, workspace=ws)
        tag = f"{REGISTRY}/amlpkg-test/signed-iris:{version.version}"
        options = BuildOptions(
            base_image=local_base_image,
            tag=tag,
            amlpkg_wheel=trained_model.amlpkg_wheel,
            require_signature=True,
            trust=public,
        )
        package = build_image(ws, version.ref, options)
        bundle_dir = tmp_path / "other"
        from amlpkg.trainer.signing import export_signed

        export_signed(other.ref, bundle_dir, workspace=ws)
    try:
        labels = inspect_image(tag).labels
        assert labels["ai.amlpkg.signature.required"] == "true"
        assert labels["ai.amlpkg.signature.trust"] == Trust(public).signer
        assert package.labels["ai.amlpkg.signature.trust"] == Trust(public).signer
        running = run_image(tag)
        base = f"http://127.0.0.1:{running.http_port}"
        meta = httpx.get(f"{base}/v2/models/signed-iris", timeout=10).json()
        assert meta["parameters"]["signature_verified"] == "true"
        assert meta["parameters"]["signature_signer"] == Trust(public).signer
        signature = version.signature
        rows = [[5.1, 3.5, 1.4, 0.2]]
        body = {
            "inputs": [
                {"name": signature["inputs"][0]["name"], "shape": [1, 4], "datatype": "FP32",
                 "data": rows}
            ]
        }  # fmt: skip
        infer = httpx.post(f"{base}/v2/models/signed-iris/infer", json=body, timeout=30)
        assert infer.status_code == 200, infer.text

        def load(name: str, files: dict[str, bytes]) -> httpx.Response:
            params = {f"file:1/{k}": base64.b64encode(v).decode() for k, v in files.items()}
            return httpx.post(
                f"{base}/v2/repository/models/{name}/load",
                json={"parameters": params},
                timeout=60,
            )

        model_bytes = source.read_bytes()
        unsigned = load("unsigned", {"model.onnx": model_bytes})
        assert unsigned.status_code == 400, unsigned.text
        assert "no signature" in unsigned.text
        # Signed, but by a key the image does not trust.
        foreign = {p.name: p.read_bytes() for p in bundle_dir.iterdir()}
        refused = load("foreign", foreign)
        assert refused.status_code == 400 and "signature check" in refused.text
        # The signed model keeps serving.
        again = httpx.post(f"{base}/v2/models/signed-iris/infer", json=body, timeout=30)
        assert again.status_code == 200
    finally:
        remove_image(tag)
