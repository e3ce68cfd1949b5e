"""`amlpkg deploy` and `deployments status|rollback|delete` against a real team server: the
deployment runs on this machine (a local supervisor), the model comes from the server
(sha256 checked), and every revision, its status and its lineage edges are recorded there."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server
from tests.packager.test_deploy_local import _score_http
from tests.remote.conftest import TeamServer, amlpkg
from tests.runtime import toy_models
from tests.services import REGISTRY, registry_available, require

pytestmark = pytest.mark.slow
MODEL = "scorer"  # the name _score_http scores
FAST = ("--ready-timeout", "60", "--drain-grace", "0")


def _upload_versions(team: TeamServer, tmp_path: Path) -> None:
    """scorer:1 and scorer:2 (other weights) on the server."""
    with TeamClient(Server(team.url, team.tokens["contributor"])) as client:
        for version in (1, 2):
            model = toy_models.mlp_model((4, 8, 3), seed=version - 1)
            path = toy_models.save(model, tmp_path / "files", MODEL, version)
            client.upload_version(MODEL, path, run=None, description=None)


def _deploy(env: dict[str, str], *args: str) -> dict[str, object]:
    done = amlpkg("deploy", *args, "--target", "local", "--name", "web", *FAST, "--json", env=env)
    return dict(json.loads(done.stdout))


def _server_rows(team: TeamServer) -> dict[str, dict[str, object]]:
    with team.api("reader") as api:
        return {row["id"]: row for row in api.get("/deployments/web").json()}


def test_deploy_status_rollback_delete_run_here_and_are_recorded_on_the_server(
    team: TeamServer, tmp_path: Path
) -> None:
    _upload_versions(team, tmp_path)
    env = team.env("contributor")
    first = _deploy(env, f"{MODEL}:1")
    assert first["id"] == "web:1" and first["status"] == "ready"
    endpoint = str(first["endpoints"]["http"])  # type: ignore[index]
    assert _score_http(endpoint) == 1

    # The server lists it, with the lineage edge from the version, and readers see it.
    with team.api("reader") as api:
        listed = api.get("/deployments").json()
        lineage = api.get(f"/models/{MODEL}/versions/1/lineage").json()
        hidden = api.get("/deployments/web/revisions")
    assert [(r["id"], r["status"], r["endpoints"]["http"]) for r in listed] == [
        ("web:1", "ready", endpoint)
    ]
    edges = {(e["src_id"], e["relation"], e["dst_id"]) for e in lineage["downstream"]}
    assert (f"{MODEL}:1", "deployed_as", "web:1") in edges
    assert hidden.status_code == 403  # config and state are for contributors

    second = _deploy(env, f"{MODEL}:2")
    assert second["id"] == "web:2" and second["endpoints"] == first["endpoints"]
    assert _score_http(endpoint) == 2  # blue/green on the same stable endpoint
    rows = _server_rows(team)
    assert (rows["web:1"]["status"], rows["web:2"]["status"]) == ("stopped", "ready")

    # A status change the server missed (it was away at the end of the deploy) is sent
    # again by the next command from this machine.
    with team.api("contributor") as api:
        lost = api.patch("/deployments/web/revisions/2", json={"status": "pending"})
    assert lost.status_code == 200 and _server_rows(team)["web:2"]["status"] == "pending"
    status = json.loads(amlpkg("deployments", "status", "web", "--json", env=env).stdout)
    assert status["id"] == "web:2" and status["live"]["ready"] is True
    assert status["live"]["serving"] == "web:2"
    assert _server_rows(team)["web:2"]["status"] == "ready"

    back = json.loads(amlpkg("deployments", "rollback", "web", "--json", env=env).stdout)
    assert back["id"] == "web:3" and back["model"] == f"{MODEL}:1"
    assert _score_http(endpoint) == 1
    rows = _server_rows(team)
    assert (rows["web:2"]["status"], rows["web:3"]["status"]) == ("stopped", "ready")

    # Another machine (its own cache workspace) cannot reach this supervisor: it says so.
    elsewhere = {**env, "XDG_CACHE_HOME": str(tmp_path / "other-machine")}
    for command in (
        ("deployments", "status", "web"),
        ("deployments", "delete", "web"),
        ("deployments", "rollback", "web"),
        ("deploy", f"{MODEL}:2", "-n", "web"),
    ):
        refused = amlpkg(*command, env=elsewhere, check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "runs on the machine that deployed it" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert _score_http(endpoint) == 1 and len(_server_rows(team)) == 3
    # Nor can the server itself (the web UI's buttons): it says where to run it from.
    with team.api("contributor") as api:
        for answer in (api.post("/deployments/web/rollback"), api.delete("/deployments/web")):
            assert answer.status_code == 400, answer.text
            assert "deployed from a user's machine" in answer.text
            assert "amlpkg deployments" in answer.text
    assert _score_http(endpoint) == 1 and len(_server_rows(team)) == 3

    deleted = amlpkg("deployments", "delete", "web", env=env)
    assert "web:3 stopped" in deleted.stdout
    assert _server_rows(team)["web:3"]["status"] == "stopped"
    with pytest.raises(httpx.TransportError):
        _score_http(endpoint)
    with open_workspace(team.home) as ws:
        actions = [e.action for e in audit.entries(ws)]
    assert actions.count("POST /api/v1/deployments/{name}/revisions") == 3
    assert actions.count("PATCH /api/v1/deployments/{name}/revisions/{revision}") >= 6


def test_a_reader_cannot_deploy_nothing_is_recorded_or_started_but_may_dry_run(
    team: TeamServer, tmp_path: Path
) -> None:
    _upload_versions(team, tmp_path)
    done = amlpkg("deploy", f"{MODEL}:1", "--name", "web", env=team.env("reader"), check=False)
    assert done.returncode != 0
    assert "a reader token may not" in done.stderr and "contributor token" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache" / "amlpkg" / "deploy").exists()
    # A dry run changes nothing: a reader may make the manifests of the server's version.
    image = "reg.example/scorer:1"
    plan = amlpkg("deploy", f"{MODEL}:1", "--name", "web", "--target", "kubernetes",
                  "--image", image, "--dry-run", env=team.env("reader"))  # fmt: skip
    assert "kind: Deployment" in plan.stdout and f"image: {image}" in plan.stdout
    with team.api("reader") as api:
        assert api.get("/deployments").json() == []


def test_bad_names_and_bodies_are_refused_with_4xx(team: TeamServer, tmp_path: Path) -> None:
    _upload_versions(team, tmp_path)
    done = amlpkg("deploy", f"{MODEL}:1", "--name", "Bad_Name", env=team.env(), check=False)
    assert done.returncode == 2 and "invalid deployment name 'Bad_Name'" in done.stderr
    row = {"revision": 1, "target": "local", "model": f"{MODEL}:1", "created_by": "me@here"}
    with team.api("contributor") as api:
        cases = {
            "bad name": api.post("/deployments/Bad_Name/revisions", json=row),
            "not the next revision": api.post("/deployments/web/revisions",
                                              json={**row, "revision": 2}),
            "unknown target": api.post("/deployments/web/revisions",
                                       json={**row, "target": "mainframe"}),
            "unknown model": api.post("/deployments/web/revisions",
                                      json={**row, "model": "nope:1"}),
            "unknown package": api.post("/deployments/web/revisions",
                                        json={**row, "package": "pkg-20250101000000-abcdef"}),
            "unknown field": api.post("/deployments/web/revisions", json={**row, "x": 1}),
            "no such revision": api.patch("/deployments/web/revisions/7",
                                          json={"status": "ready"}),
        }  # fmt: skip
        made = api.post("/deployments/web/revisions", json=row)
        again = api.post("/deployments/web/revisions", json=row)
        bad_status = api.patch("/deployments/web/revisions/1", json={"status": "great"})
    with team.api("reader") as api:
        as_reader = api.patch("/deployments/web/revisions/1", json={"status": "ready"})
    statuses = {case: answer.status_code for case, answer in cases.items()}
    assert statuses == {
        "bad name": 400, "not the next revision": 409, "unknown target": 400,
        "unknown model": 404, "unknown package": 404, "unknown field": 400,
        "no such revision": 404,
    }  # fmt: skip
    assert "invalid deployment name" in cases["bad name"].json()["error"]
    assert made.status_code == 201 and made.json()["status"] == "pending"
    assert again.status_code == 409 and "try again" in again.json()["hint"]
    assert bad_status.status_code == 400 and as_reader.status_code == 403


def test_an_oci_source_is_linked_to_the_servers_version(team: TeamServer, tmp_path: Path) -> None:
    require(registry_available(), f"no OCI registry at {REGISTRY}")
    from amlpkg.packager.oci.modelpack import push_model_version
    from amlpkg.trainer.registry import register

    _upload_versions(team, tmp_path)
    local = tmp_path / "local-ws"  # the same bytes, pushed from a workspace of this machine
    register(MODEL, tmp_path / "files" / MODEL / "1" / "model.onnx", home=local)
    tag = f"oci://{REGISTRY}/test/remote-deploy-{uuid.uuid4().hex[:8]}:v1"
    pinned = push_model_version(f"{MODEL}:1", tag, home=local).reference
    record = _deploy(team.env(), tag)
    try:
        assert record["model"] == f"{MODEL}:1" and record["package"] == pinned
        with team.api("reader") as api:
            into = api.get("/lineage/deployment/web:1").json()["upstream"]
        assert {(e["src_id"], e["relation"]) for e in into} >= {
            (f"{MODEL}:1", "deployed_as"),
            (pinned, "deployed_as"),
        }
    finally:
        amlpkg("deployments", "delete", "web", env=team.env())
