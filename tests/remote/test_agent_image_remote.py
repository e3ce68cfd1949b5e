"""`amlpkg build --flavor edge-agent` against a real team server: built and pushed here (the
daemonless builder, to the local registry 127.0.0.1:5000), recorded there; `deploy --target
iotedge --dry-run` against the server then pins the server's agent image by digest."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server
from tests.remote.conftest import TeamServer, amlpkg
from tests.runtime import toy_models
from tests.services import REGISTRY, registry_available, require

DIGEST = "r.example/amlpkg-edge-agent@sha256:" + "ab" * 32
EDGE = ("--target", "iotedge", "--name", "plant", "--device-id", "cam-1", "--dry-run",
        "--model-url", "https://m.example/m.onnx", "--image", "r.example/scorer:1")  # fmt: skip


def _agent_module(manifest: str) -> dict[str, Any]:
    content = json.loads(manifest)["modulesContent"]
    return dict(content["$edgeAgent"]["properties.desired"]["modules"][edge.AGENT_MODULE])


def _upload_model(team: TeamServer, tmp_path: Path) -> None:
    path = toy_models.save(toy_models.mlp_model((4, 8, 3)), tmp_path / "m", "scorer")
    with TeamClient(Server(team.url, team.tokens["contributor"])) as client:
        client.upload_version("scorer", path, run=None, description=None)


def test_iotedge_pins_the_servers_agent_image(team: TeamServer, tmp_path: Path) -> None:
    _upload_model(team, tmp_path)
    env = team.env("contributor")
    missing = amlpkg("deploy", "scorer:1", *EDGE, env=env, check=False)
    assert missing.returncode != 0 and "no edge agent image for linux/amd64" in missing.stderr
    with team.api("reader") as reader:
        body = {"platform": "linux/amd64", "image": DIGEST, "relation": "pushed_as"}
        assert reader.post("/agent-images", json=body).status_code == 403
    with team.api("contributor") as api:
        unpinned = {"platform": "linux/amd64", "image": "r.example/a:1", "relation": "pushed_as"}
        refused = api.post("/agent-images", json=unpinned)
        assert refused.status_code == 400 and "by digest" in refused.text
        odd = api.post("/agent-images", json={**body, "platform": "windows/amd64"})
        assert odd.status_code == 400
        assert api.post("/agent-images", json=body).json() == {"images": {"linux/amd64": DIGEST}}
    planned = amlpkg("deploy", "scorer:1", *EDGE, env=env)
    assert _agent_module(planned.stdout)["settings"]["image"] == DIGEST
    arm = amlpkg("deploy", "scorer:1", *EDGE, "--platform", "linux/arm64", env=env, check=False)
    assert arm.returncode != 0 and "linux/arm64" in arm.stderr  # no other platform's image


@pytest.mark.slow
def test_build_edge_agent_oci_records_on_the_server(team: TeamServer, tmp_path: Path) -> None:
    require(registry_available(), f"an OCI registry on {REGISTRY} is needed")
    tag = f"{REGISTRY}/amlpkg-test/remote-agent:{uuid.uuid4().hex[:8]}"
    reader = amlpkg("build", "--flavor", "edge-agent", "--builder", "oci", "--tag", tag,
                    env=team.env("reader"), check=False)  # fmt: skip
    assert reader.returncode != 0 and "reader token may not" in reader.stderr
    done = amlpkg("build", "--flavor", "edge-agent", "--builder", "oci", "--tag", tag,
                  "--platform", "linux/amd64", "--json", env=team.env("contributor"))  # fmt: skip
    built = json.loads(done.stdout)
    pinned = built["repo_digest"]
    assert pinned.startswith(f"{REGISTRY}/amlpkg-test/remote-agent@sha256:")
    with team.api("reader") as api:
        assert api.get("/agent-images").json() == {"images": {"linux/amd64": pinned}}
        lineage = api.get("/lineage/edge_agent/linux/amd64").json()
    assert [(e["dst_id"], e["relation"]) for e in lineage["downstream"]] == [(pinned, "pushed_as")]
    with open_workspace(team.home) as ws:
        assert "POST /api/v1/agent-images" in [e.action for e in audit.entries(ws)]
    _upload_model(team, tmp_path)
    planned = amlpkg("deploy", "scorer:1", *EDGE, env=team.env("contributor"))
    assert _agent_module(planned.stdout)["settings"]["image"] == pinned


def test_a_reader_is_refused_before_the_docker_build(team: TeamServer) -> None:
    done = amlpkg("build", "--flavor", "edge-agent", env=team.env("reader"), check=False)
    assert done.returncode != 0 and "reader token may not" in done.stderr
    assert "Traceback" not in done.stderr
