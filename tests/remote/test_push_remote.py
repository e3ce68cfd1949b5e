"""`amlpkg push` against a real team server and the real registry (127.0.0.1:5000): the
version, its signature and provenance come from the server, and what lands in the registry
is what a push from the workspace that server serves makes (same manifest digest)."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from amlpkg.packager.oci.modelpack import pull_model
from amlpkg.release import MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE
from amlpkg.runtime.signing import Trust
from tests.remote.conftest import TeamServer, amlpkg
from tests.remote.test_deploy_remote import MODEL, _upload_versions
from tests.services import REGISTRY, registry_available, require
from tests.signing_helpers import make_keypair

pytestmark = pytest.mark.slow


def _push(ref: str, target: str, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    return dict(json.loads(amlpkg("push", ref, target, "--json", *args, env=env).stdout))


def test_push_sends_the_servers_version_and_signature(team: TeamServer, tmp_path: Path) -> None:
    require(registry_available(), f"no OCI registry at {REGISTRY}")
    _upload_versions(team, tmp_path)
    key, trusted = make_keypair(tmp_path, "signer")
    amlpkg("models", "sign", f"{MODEL}:1", "--key", str(key), env=team.env())
    repo = f"oci://{REGISTRY}/test/remote-push-{uuid.uuid4().hex[:8]}"
    reader = team.env("reader")  # a push changes nothing on the server: a reader may push
    signed = _push(f"{MODEL}:1", f"{repo}:v1", env=reader)
    assert signed["signature_digest"] and signed["provenance_digest"]
    pulled = pull_model(signed["reference"], tmp_path / "pulled")
    assert sorted(pulled.files) == sorted([MODEL_FILE, RELEASE_FILE, SIGNATURE_FILE])
    assert Trust(trusted).verify_folder(tmp_path / "pulled").release.version == 1
    with team.api() as api:
        version = api.get(f"/models/{MODEL}/versions/1").json()
        kept = api.get(f"/models/{MODEL}/versions/1/signature").json()
    model = (tmp_path / "pulled" / MODEL_FILE).read_bytes()
    assert hashlib.sha256(model).hexdigest() == version["sha256"]
    assert pulled.provenance is not None and pulled.provenance.decode() == kept["provenance"]

    unsigned = _push(f"{MODEL}:2", f"{repo}:v2", env=reader)
    assert unsigned["signature_digest"] is None
    assert pull_model(unsigned["reference"], tmp_path / "v2").files == [MODEL_FILE]

    # The workspace the server serves, pushed from here: the same artifact, byte for byte.
    team.stop()
    embedded = _push(f"{MODEL}:1", f"{repo}:embedded", "--home", str(team.home))
    assert embedded["digest"] == signed["digest"]
    assert embedded["signature_digest"] == signed["signature_digest"]
