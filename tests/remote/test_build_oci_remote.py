"""`amlpkg build MODEL --builder oci` against a real team server: the model is fetched from the
server (sha256 checked), the image is written and pushed daemonless here to the local registry
(127.0.0.1:5000), and the package row and its lineage arrow are recorded on the server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from amlpkg.store.workspace import open_workspace
from tests.remote.conftest import TeamServer, amlpkg
from tests.remote.test_agent_image_remote import _upload_model
from tests.services import REGISTRY, registry_available, require

pytestmark = pytest.mark.slow


def test_build_oci_fetches_from_and_records_on_the_server(team: TeamServer, tmp_path: Path) -> None:
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    _upload_model(team, tmp_path)
    tag = f"{REGISTRY}/amlpkg-test/remote-oci:{uuid.uuid4().hex[:8]}"
    build = ("build", "scorer:1", "--builder", "oci", "--tag", tag, "--platform", "linux/amd64")
    reader = amlpkg(*build, env=team.env("reader"), check=False)
    assert reader.returncode != 0 and "reader token may not" in reader.stderr
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = amlpkg(*build, "--json", env=team.env("contributor"), cwd=cwd)
    built = json.loads(done.stdout)
    pinned = built["repo_digest"]
    assert pinned.startswith(f"{REGISTRY}/amlpkg-test/remote-oci@sha256:")
    assert list(cwd.iterdir()) == []  # no ./.amlpkg: nothing was recorded locally
    with team.api("reader") as api:
        rows = api.get("/packages", params={"model": "scorer"}).json()
        lineage = api.get("/models/scorer/versions/1/lineage").json()
    assert [(p["id"], p["repo_digest"], p["platform"]) for p in rows] == [
        (built["id"], pinned, "linux/amd64")
    ]
    digest = pinned.split("@")[1]
    assert rows[0]["labels"]["ai.amlpkg.oci.platforms"] == f"linux/amd64={digest}"
    assert rows[0]["labels"]["ai.amlpkg.model.sha256"] == _version_sha256(team)
    ids = {edge["dst_id"] for edge in lineage["downstream"]}
    assert {built["id"], pinned} <= ids  # version -> package -> pushed image
    with open_workspace(team.home) as ws:
        assert ws.conn.execute("SELECT COUNT(*) FROM packages").fetchone()[0] == 1


def _version_sha256(team: TeamServer) -> str:
    with team.api("reader") as api:
        return str(api.get("/models/scorer/versions/1").json()["sha256"])
