"""`amlpkg models sign|verify`, `register --sign-key` and signed builds against a real team
server: the version is signed on this machine (the key never leaves it), the server keeps the
bundle, release and provenance as an embedded workspace does, and checks what it is sent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from amlpkg.packager.build.options import BuildOptions
from amlpkg.packager.build.remote import build_on_server, build_workspace
from amlpkg.packager.repository import find_signature
from amlpkg.release import RELEASE_FILE, SIGNATURE_FILE
from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote.config import Server
from tests.remote.conftest import TeamServer, amlpkg
from tests.remote.test_deploy_remote import MODEL, _upload_versions
from tests.runtime import toy_models
from tests.signing_helpers import make_keypair

pytestmark = pytest.mark.slow


def _signature_edges(team: TeamServer, ref: str) -> list[dict[str, str]]:
    with team.api() as api:
        chain = api.get(f"/lineage/model_version/{ref}").json()
    return [e for e in chain["downstream"] if e["dst_kind"] in ("signature", "verification")]


def test_sign_and_verify_run_here_and_are_kept_on_the_server(
    team: TeamServer, tmp_path: Path
) -> None:
    _upload_versions(team, tmp_path)
    key, trusted = make_keypair(tmp_path, "signer")
    _, other = make_keypair(tmp_path, "other")
    env = team.env("contributor")
    done = amlpkg("models", "sign", f"{MODEL}:1", "--key", str(key), "--json", env=env)
    signed = json.loads(done.stdout)
    assert signed["ref"] == f"{MODEL}:1" and signed["signer"].startswith("key:sha256:")

    with team.api() as api:
        kept = api.get(f"/models/{MODEL}/versions/1/signature").json()
        assert api.get(f"/models/{MODEL}/versions/2/signature").status_code == 404
    assert kept["record_sha256"] == signed["record_sha256"]
    assert (
        json.loads(kept["provenance"])["subject"][0]["digest"]["sha256"]
        == json.loads(kept["release"])["model_sha256"]
    )
    edges = _signature_edges(team, f"{MODEL}:1")
    assert [(e["relation"], e["dst_id"]) for e in edges] == [("signed", signed["record_sha256"])]

    done = amlpkg("models", "verify", f"{MODEL}:1", "--trust", str(trusted), "--json", env=env)
    assert json.loads(done.stdout)["signature_signer"] == signed["signer"]
    refused = amlpkg("models", "verify", f"{MODEL}:1", "--trust", str(other), env=env,
                     check=False)  # fmt: skip
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    outcomes = {e["dst_id"].rsplit(":", 1)[1] for e in _signature_edges(team, f"{MODEL}:1")
                if e["dst_kind"] == "verification"}  # fmt: skip
    assert outcomes == {"verified", "refused"}
    # The server keeps what an embedded workspace keeps: its own files verify there too.
    team.stop()
    here = amlpkg("models", "verify", f"{MODEL}:1", "--trust", str(trusted), "--home",
                  str(team.home), "--json")  # fmt: skip
    assert json.loads(here.stdout)["signature_signer"] == signed["signer"]
    with open_workspace(team.home) as ws:
        actions = [e.action for e in audit.entries(ws)]
    assert "POST /api/v1/models/{name}/versions/{version}/signatures" in actions
    assert actions.count("POST /api/v1/models/{name}/versions/{version}/verifications") == 2


def test_register_with_a_sign_key_signs_the_new_version(team: TeamServer, tmp_path: Path) -> None:
    key, trusted = make_keypair(tmp_path, "signer")
    path = toy_models.save(toy_models.mlp_model((4, 8, 3)), tmp_path / "files", MODEL, 1)
    env = team.env("contributor")
    done = amlpkg("models", "register", MODEL, str(path), "--sign-key", str(key), env=env)
    assert f"signed {MODEL}:1" in done.stdout
    amlpkg("models", "verify", f"{MODEL}:1", "--trust", str(trusted), env=env)
    # A bad key is refused before anything is registered.
    (tmp_path / "junk.pem").write_text("not a key")
    bad = amlpkg("models", "register", MODEL, str(path), "--sign-key", str(tmp_path / "junk.pem"),
                 env=env, check=False)  # fmt: skip
    assert bad.returncode == 2 and "cannot be used" in bad.stderr
    with team.api() as api:
        assert [v["version"] for v in api.get(f"/models/{MODEL}/versions").json()] == [1]


def test_a_reader_cannot_sign_or_record_a_verification(team: TeamServer, tmp_path: Path) -> None:
    _upload_versions(team, tmp_path)
    key, trusted = make_keypair(tmp_path, "signer")
    for args in (("sign", f"{MODEL}:1", "--key", str(key)),
                 ("verify", f"{MODEL}:1", "--trust", str(trusted))):  # fmt: skip
        done = amlpkg("models", *args, env=team.env("reader"), check=False)
        assert done.returncode == 2 and "a reader token may not" in done.stderr
    assert _signature_edges(team, f"{MODEL}:1") == []


def _bundle(resources: dict[str, str]) -> str:
    listed = [{"name": n, "digest": d, "algorithm": "sha256"} for n, d in resources.items()]
    statement = {"predicate": {"resources": listed}}
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps({"dsseEnvelope": {"payload": payload, "signatures": []}})


def test_the_server_refuses_signatures_of_other_files(team: TeamServer, tmp_path: Path) -> None:
    _upload_versions(team, tmp_path)
    key, _ = make_keypair(tmp_path, "signer")
    amlpkg("models", "sign", f"{MODEL}:1", "--key", str(key), env=team.env())
    with team.api() as api:
        good = api.get(f"/models/{MODEL}/versions/1/signature").json()
    body = {k: good[k] for k in ("signer", "bundle", "release", "provenance")}
    url = f"/models/{MODEL}/versions/2/signatures"
    with team.api("contributor") as api:
        # Version 1's signature sent to version 2: its release names the other file.
        wrong = api.post(url, json=body)
        assert wrong.status_code == 400 and "not scorer:2" in wrong.json()["error"]
        fake = api.post(f"/models/{MODEL}/versions/1/signatures",
                        json={**body, "bundle": _bundle({"model.onnx": "0" * 64})})  # fmt: skip
        assert fake.status_code == 400 and "other digests" in fake.json()["error"]
        junk = api.post(f"/models/{MODEL}/versions/1/signatures", json={**body, "bundle": "{}"})
        assert junk.status_code == 400 and "DSSE" in junk.json()["error"]
        big = api.post(url, json={**body, "provenance": "x" * (300 * 1024)})
        assert big.status_code in (400, 413)
        assert api.post(url, json={**body, "signer": "me"}).status_code == 400
        unknown = {"record_sha256": "0" * 64, "where": "cli:x", "ok": True}
        missing = api.post(f"/models/{MODEL}/versions/1/verifications", json=unknown)
        assert missing.status_code == 404
    with team.api("reader") as api:
        assert api.post(f"/models/{MODEL}/versions/1/signatures", json=body).status_code == 403
    assert len(_signature_edges(team, f"{MODEL}:1")) == 1


def test_a_folder_build_places_the_servers_signature_beside_the_model(
    team: TeamServer, tmp_path: Path
) -> None:
    _upload_versions(team, tmp_path)
    key, _ = make_keypair(tmp_path, "signer")
    amlpkg("models", "sign", f"{MODEL}:2", "--key", str(key), env=team.env())
    server = Server(team.url, team.tokens["contributor"])
    with team.api() as api:
        kept = api.get(f"/models/{MODEL}/versions/2/signature").json()
    for version, signed in ((2, True), (1, False)):
        output = tmp_path / f"pkg-{version}"
        build_on_server(server, f"{MODEL}:{version}", BuildOptions(format="dir", output=output))
        folder = output / "models" / MODEL / str(version)
        assert (folder / "model.onnx").is_file()
        assert (folder / SIGNATURE_FILE).is_file() is signed
        if signed:
            assert (folder / RELEASE_FILE).read_text() == kept["release"]
            assert (folder / SIGNATURE_FILE).read_text() == kept["bundle"]
    # The signature sits in this server's build cache only, not in another server's.
    with open_workspace(build_workspace(server)) as ws:
        assert find_signature(ws, f"{MODEL}:2") is not None
    other = Server(f"http://localhost:{team.port}", team.tokens["contributor"])
    assert build_workspace(other) != build_workspace(server)
    assert not build_workspace(other).exists()


def test_an_image_build_requiring_signatures_refuses_an_unsigned_server_version(
    team: TeamServer, tmp_path: Path
) -> None:
    _upload_versions(team, tmp_path)
    _, trusted = make_keypair(tmp_path, "signer")
    done = amlpkg("build", f"{MODEL}:1", "--require-signature", "--trust", str(trusted),
                  env=team.env(), check=False)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{MODEL}:1 is not signed" in done.stderr and "team server" not in done.stderr
