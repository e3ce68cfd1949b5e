"""The routes `amlpkg models sign|verify` and `amlpkg score` use against a server, on both
stores (the embedded SQLite folder and PostgreSQL from ``.ci/services.sh``), in process: a
signature made here is kept and served back, verifications and scorings land in the lineage,
and a reader is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpkg.trainer.registry import MODEL_VERSION_KIND
from amlpkg.trainer.remote.backend import model_version
from amlpkg.trainer.signing import SignedFile, load_signer, sign_file
from amlpkg.trainer.slsa import statement_of
from tests.server.conftest import Api, api, home, onnx_bytes, role_tokens, sha256
from tests.server.test_runs_search import app
from tests.signing_helpers import make_keypair

__all__ = ["api", "app", "home", "role_tokens"]  # the server over each store, a client per role
V = "/api/v1/models/net/versions/1"


def _signed(api: dict[str, Api], tmp_path: Path) -> dict[str, str]:
    """net:1 uploaded and signed here; the body a client sends."""
    model = onnx_bytes()
    made = api["contributor"].post(
        "/api/v1/models/net/versions/upload", params={"sha256": sha256(model)}, content=model
    )
    assert made.status_code == 201, made.text
    version = model_version(made.json())
    (tmp_path / "model.onnx").write_bytes(model)
    key, _ = make_keypair(tmp_path, "signer")
    signer = load_signer(key)
    subject = SignedFile(version, (MODEL_VERSION_KIND, version.ref), tmp_path / "model.onnx",
                         version.sha256)  # fmt: skip
    files = sign_file(signer, subject, statement_of(version, None, []))
    return {"signer": signer.fingerprint, "bundle": files.bundle.decode(),
            "release": files.release.decode(), "provenance": files.provenance.decode()}  # fmt: skip


def test_signatures_verifications_and_scorings_on_each_store(
    api: dict[str, Api], tmp_path: Path
) -> None:
    body = _signed(api, tmp_path)
    assert api["reader"].get(f"{V}/signature").status_code == 404
    assert api["reader"].post(f"{V}/signatures", json=body).status_code == 403
    kept = api["contributor"].post(f"{V}/signatures", json=body)
    assert kept.status_code == 201, kept.text
    record = kept.json()
    served = api["reader"].get(f"{V}/signature").json()
    assert served["record_sha256"] == record["record_sha256"]
    assert {k: served[k] for k in body} == body
    check = {"record_sha256": record["record_sha256"], "where": "cli:key:sha256:ab", "ok": True}
    assert api["reader"].post(f"{V}/verifications", json=check).status_code == 403
    verified = api["contributor"].post(f"{V}/verifications", json=check)
    assert verified.status_code == 201 and verified.json() == {"outcome": "verified"}
    scoring = {"input": "/data/in.parquet@sha256:" + "a" * 64, "output": "/data/out#rows=3"}
    assert api["reader"].post(f"{V}/scorings", json=scoring).status_code == 403
    scored = api["contributor"].post(f"{V}/scorings", json=scoring)
    assert scored.status_code == 201 and scored.json() == {"model_version": "net:1", "edges": 2}
    edges = api["reader"].get("/api/v1/lineage/model_version/net:1").json()["downstream"]
    found = {(e["relation"], e["dst_kind"]) for e in edges}
    assert {("signed", "signature"), ("verified", "verification"), ("scored", "dataset"),
            ("scored_into", "dataset")} <= found  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("release", "{}", 400),
        ("provenance", "{}", 400),  # not the provenance the release names
        ("bundle", "not json", 400),
        ("signer", "key:sha256:xyz", 400),
        ("bundle", "x" * (300 * 1024), 400),  # past the size bound of a field
    ],
)
def test_bad_signatures_are_refused_on_each_store(
    api: dict[str, Api], tmp_path: Path, field: str, value: str, status: int
) -> None:
    body = _signed(api, tmp_path)
    refused = api["contributor"].post(f"{V}/signatures", json={**body, field: value})
    assert refused.status_code == status, refused.text
    assert "error" in refused.json()
    assert api["reader"].get(f"{V}/signature").status_code == 404
