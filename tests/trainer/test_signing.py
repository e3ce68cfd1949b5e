"""Signing model versions: the bundle, the SLSA provenance, the lineage, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE, Release
from amlpkg.runtime.signing import SignatureError, Trust
from amlpkg.store.lineage_edges import edges_from
from amlpkg.store.workspace import Workspace
from amlpkg.trainer import tracking
from amlpkg.trainer.registry import register
from amlpkg.trainer.signing import (
    SIGNATURE_KIND,
    export_signed,
    latest_signature,
    record_verification,
    sign_model_version,
)
from tests.runtime.toy_models import add_sub_model
from tests.signing_helpers import make_keypair

AMLPKG = str(Path(sys.executable).parent / "amlpkg")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_keypair(tmp_path, "signer")


def _model(tmp_path: Path) -> Path:
    path = tmp_path / "adder.onnx"
    onnx.save(add_sub_model(), path)
    return path


def test_sign_records_bundle_release_and_provenance(
    ws: Workspace, home: Path, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    with tracking.start_run(experiment="sign", home=home) as run:
        run.log_params({"lr": 0.1})
        run.log_artifact(_model(tmp_path), "data")
    version = register("adder", _model(tmp_path), run=run.id, workspace=ws)
    record = sign_model_version(version.ref, keys[0], workspace=ws)
    assert record.signer == Trust(keys[1]).signer
    edges = [
        e for e in edges_from(ws, ("model_version", "adder:1")) if e.dst_kind == SIGNATURE_KIND
    ]
    assert [e.dst_id for e in edges] == [record.record_sha256]
    assert latest_signature("adder:1", workspace=ws) == record

    release = Release.parse(ws.artifacts.read_bytes(record.release_sha256))
    assert (release.name, release.version, release.model_sha256) == ("adder", 1, version.sha256)
    assert release.provenance_sha256 == record.provenance_sha256
    provenance = json.loads(ws.artifacts.read_bytes(record.provenance_sha256))
    assert provenance["predicateType"] == "https://slsa.dev/provenance/v1"
    assert provenance["subject"][0]["digest"] == {"sha256": version.sha256}
    build = provenance["predicate"]["buildDefinition"]
    assert build["externalParameters"]["run"]["run"] == run.id
    assert build["externalParameters"]["run"]["params"] == {"lr": "0.1"}
    assert any(d.get("name", "").endswith("data/adder.onnx") for d in build["resolvedDependencies"])
    assert provenance["predicate"]["runDetails"]["metadata"]["invocationId"] == run.id


def test_exported_folder_verifies_offline_and_records_it(
    ws: Workspace, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    version = register("adder", _model(tmp_path), workspace=ws)
    sign_model_version(version.ref, keys[0], workspace=ws)
    folder = tmp_path / "out"
    export_signed(version.ref, folder, with_provenance=tmp_path / "prov.json", workspace=ws)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [RELEASE_FILE, SIGNATURE_FILE, MODEL_FILE]
    )
    verified = Trust(keys[1]).verify_folder(folder)
    assert verified.release.version == 1
    record_verification(version.ref, "test", True, workspace=ws)
    _, other = make_keypair(tmp_path, "other")
    with pytest.raises(SignatureError, match="Key mismatch"):
        Trust(other).verify_folder(folder)


def test_unsigned_version_and_bad_keys_are_refused_clearly(
    ws: Workspace, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    version = register("adder", _model(tmp_path), workspace=ws)
    with pytest.raises(NotFoundError, match="not signed"):
        latest_signature(version.ref, workspace=ws)
    with pytest.raises(InvalidArgumentError, match="cannot be used"):
        sign_model_version(version.ref, keys[1], workspace=ws)  # a public key is no signing key
    with pytest.raises(NotFoundError, match="cannot read"):
        sign_model_version(version.ref, tmp_path / "missing.pem", workspace=ws)


def test_cli_register_signs_with_the_configured_key_and_verifies(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    env = {
        **os.environ,
        "AMLPKG_HOME": str(tmp_path / "cli-ws"),
        "AMLPKG_SIGNING_KEY": str(keys[0]),
    }

    def amlpkg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AMLPKG, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    done = amlpkg("models", "register", "adder", str(_model(tmp_path)))
    assert done.returncode == 0 and "signed" in done.stdout, done.stderr
    done = amlpkg("models", "verify", "adder:1", "--trust", str(keys[1]), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signed_version"] == "1"
    _, other = make_keypair(tmp_path, "other")
    done = amlpkg("models", "verify", "adder:1", "--trust", str(other))
    assert done.returncode == 2 and "Key mismatch" in done.stderr
