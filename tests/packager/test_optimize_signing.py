"""``optimize --sign-key``: accepted variants signed like versions, verified by the CLI and
the runtime with ``--require-signature``; real ONNX Runtime, model-signing and server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.optimize import Limits, Variant, get_variant, optimize
from amlpkg.packager.optimize.signing import export_signed_variant, variant_signature
from amlpkg.packager.repository import place_signature
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE, Release
from amlpkg.runtime.signing import SignatureError, Trust
from amlpkg.store.lineage_edges import edges_from
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.registry import get_model_version, register
from amlpkg.trainer.signing import SIGNATURE_KIND, sign_model_version
from tests.packager.test_optimize import FAST, make_mlp, stored_state
from tests.runtime.conftest import start_server
from tests.signing_helpers import make_keypair

AMLPKG = str(Path(sys.executable).parent / "amlpkg")
# Accept every variant that keeps accuracy, whatever its speed on a busy machine.
LIMITS = Limits(max_slowdown=1000.0)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with open_workspace(tmp_path / "ws") as workspace:
        register("mlp", make_mlp(tmp_path / "mlp.onnx"), workspace=workspace)
        yield workspace


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_keypair(tmp_path, "signer")


def _signed_variant(ws: Workspace, key: Path) -> Variant:
    """An accepted variant of ``mlp:1``, signed at optimize time."""
    report = optimize("mlp:1", workspace=ws, limits=LIMITS, sign_key=key, **FAST)
    return next(v for v in report.variants if v.accepted)


def test_accepted_variants_are_signed_with_optimize_provenance(
    ws: Workspace, keys: tuple[Path, Path]
) -> None:
    report = optimize("mlp:1", workspace=ws, limits=LIMITS, sign_key=keys[0], **FAST)
    accepted = [v for v in report.variants if v.accepted]
    assert accepted and set(report.signatures) == {v.id for v in accepted}
    source = get_model_version("mlp:1", workspace=ws)
    for variant in accepted:
        record = variant_signature(ws, variant.id)
        assert record.signer == Trust(keys[1]).signer
        assert report.signatures[variant.id] == record.record_sha256
        release = Release.parse(ws.artifacts.read_bytes(record.release_sha256))
        # The variant's own bytes, under its version's name and number (replay floors hold).
        assert (release.name, release.version, release.model_sha256) == (
            "mlp",
            1,
            variant.sha256,
        )
        statement = json.loads(ws.artifacts.read_bytes(record.provenance_sha256))
        assert statement["subject"][0]["digest"] == {"sha256": variant.sha256}
        build = statement["predicate"]["buildDefinition"]
        settings = build["internalParameters"]["optimize"]
        assert settings["quantization"] == variant.recipe
        assert settings["providers"] == variant.providers
        assert settings["precision"] == variant.precision
        assert settings["accuracy_vs_fp32"]["max_abs_error"] == variant.accuracy["max_abs_error"]
        assert settings["source"] == {"model": "mlp:1", "sha256": source.sha256}
        assert build["resolvedDependencies"][0]["digest"] == {"sha256": source.sha256}
    # The version itself is not signed by optimize: only what optimize made.
    assert not [
        e for e in edges_from(ws, ("model_version", "mlp:1")) if e.dst_kind == SIGNATURE_KIND
    ]


def test_refused_variants_are_not_signed(ws: Workspace, keys: tuple[Path, Path]) -> None:
    strict = Limits(max_abs_error=0.0, max_slowdown=1000.0, max_accuracy_drop=0.0)
    report = optimize("mlp:1", workspace=ws, limits=strict, sign_key=keys[0], **FAST)
    refused = [v for v in report.variants if not v.accepted]
    assert refused
    for variant in refused:
        assert variant.id not in report.signatures
        with pytest.raises(Exception, match="not signed"):
            variant_signature(ws, variant.id)


def test_a_bad_key_fails_before_any_variant_is_made(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    before = stored_state(ws)
    with pytest.raises(InvalidArgumentError, match="cannot be used"):
        optimize("mlp:1", workspace=ws, limits=LIMITS, sign_key=bad, **FAST)
    assert stored_state(ws) == before


def test_variant_folder_verifies_and_a_version_signature_beside_it_does_not(
    ws: Workspace, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    variant = _signed_variant(ws, keys[0])
    folder = tmp_path / "variant"
    export_signed_variant(ws, variant.id, folder)
    verified = Trust(keys[1]).verify_folder(folder)
    assert verified.release.model_sha256 == variant.sha256
    # A build lays the variant's own signature beside the variant's file.
    laid = tmp_path / "laid"
    laid.mkdir()
    (laid / MODEL_FILE).write_bytes((folder / MODEL_FILE).read_bytes())
    assert place_signature(ws, "mlp:1", laid, variant=variant.id)
    assert Trust(keys[1]).verify_folder(laid).release.model_sha256 == variant.sha256
    # The version's own signature covers the registered file, never the variant.
    sign_model_version("mlp:1", keys[0], workspace=ws)
    assert place_signature(ws, "mlp:1", laid)
    with pytest.raises(SignatureError):
        Trust(keys[1]).verify_folder(laid)


def _cli(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "AMLPKG_HOME": str(home), "COLUMNS": "200", **(env or {})}
    full.pop("AMLPKG_TRACKING_URI", None)
    return subprocess.run(
        [AMLPKG, *args], capture_output=True, text=True, env=full, timeout=300, check=False
    )


def test_cli_signs_from_the_environment_and_verify_accepts_a_variant(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    home = tmp_path / "ws"
    with open_workspace(home) as ws:
        register("mlp", make_mlp(tmp_path / "mlp.onnx"), workspace=ws)
    made = _cli(
        "optimize", "mlp:1", "--max-slowdown", "1000", "--json",
        home=home, env={"AMLPKG_SIGNING_KEY": str(keys[0])},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    signed = json.loads(made.stdout)["signatures"]
    assert signed
    variant_id = next(iter(signed))
    checked = _cli("models", "verify", variant_id, "--trust", str(keys[1]), "--json", home=home)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["signature_verified"] == "true"
    with open_workspace(home) as ws:
        record = variant_signature(ws, variant_id)
        outcomes = [e.dst_id for e in edges_from(ws, (SIGNATURE_KIND, record.record_sha256))]
        assert any(o.endswith(":verified") for o in outcomes)
        assert get_variant(ws, variant_id).accepted
    other = make_keypair(tmp_path, "other")[1]
    refused = _cli("models", "verify", variant_id, "--trust", str(other), home=home)
    assert refused.returncode != 0 and "signature check" in refused.stderr


def test_cli_refuses_a_signing_key_against_a_team_server(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    full = {**os.environ, "COLUMNS": "200", "AMLPKG_TRACKING_TOKEN": "unused"}
    for name in ("AMLPKG_HOME", "AMLPKG_STORE", "AMLPKG_ARTIFACTS"):
        full.pop(name, None)
    done = subprocess.run(
        [AMLPKG, "optimize", "mlp:1", "--sign-key", str(keys[0]),
         "--tracking-uri", "http://127.0.0.1:9"],
        capture_output=True, text=True, env=full, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert "needs the embedded workspace" in done.stderr


def test_runtime_requiring_signatures_serves_a_signed_variant(
    ws: Workspace, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    variant = _signed_variant(ws, keys[0])
    repo = tmp_path / "repo"
    export_signed_variant(ws, variant.id, repo / "mlp" / "1")
    unsigned = repo / "plain" / "1"
    unsigned.mkdir(parents=True)
    (unsigned / MODEL_FILE).write_bytes((repo / "mlp" / "1" / MODEL_FILE).read_bytes())
    assert sorted(p.name for p in (repo / "mlp" / "1").iterdir()) == sorted(
        [MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE]
    )
    server = start_server(
        repo, tmp_path, "--require-signature", "--trust", str(keys[1]),
        "--strict-readiness", "false",
    )  # fmt: skip
    try:
        meta = httpx.get(f"{server.base_url}/v2/models/mlp").json()
        assert meta["parameters"]["signature_digest"] == f"sha256:{variant.sha256}"
        body = {"inputs": [{"name": "X", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 16}]}
        infer = httpx.post(f"{server.base_url}/v2/models/mlp/infer", json=body, timeout=30)
        assert infer.status_code == 200, infer.text
        index = httpx.post(f"{server.base_url}/v2/repository/index", json={}).json()
        plain = next(m for m in index if m["name"] == "plain")
        assert plain["state"] == "UNAVAILABLE" and "no signature" in plain["reason"]
    finally:
        server.stop()
