"""The routes `amlpkg deploy` uses against a server, on both stores (the embedded SQLite folder
and PostgreSQL from ``.ci/services.sh``): a revision is recorded pending with its lineage edges
only as the next number, moved on as the deploy goes, and read whole by contributors only."""

from __future__ import annotations

from pathlib import Path

from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from tests.server.conftest import Api, onnx_bytes, sha256
from tests.server.test_runs_search import app

__all__ = ["app"]  # the server over each store

D = "/api/v1/deployments/web"
ROW = {"revision": 1, "target": "docker", "model": "net:1", "image": "reg/net:1",
       "config": {"source": "net:1", "cpus": 1.0}, "created_by": "ana@laptop"}  # fmt: skip


def test_a_revision_is_recorded_moved_on_and_read_back(api: dict[str, Api], home: Path) -> None:
    contributor, reader = api["contributor"], api["reader"]
    model = onnx_bytes()
    up = contributor.post(
        "/api/v1/models/net/versions/upload", params={"sha256": sha256(model)}, content=model
    )
    assert up.status_code == 201, up.text

    made = contributor.post(f"{D}/revisions", json=ROW)
    assert made.status_code == 201, made.text
    assert (made.json()["id"], made.json()["status"]) == ("web:1", "pending")
    assert made.json()["created_by"] == "ana@laptop" and made.json()["config"]["cpus"] == 1.0
    taken = contributor.post(f"{D}/revisions", json=ROW)
    assert taken.status_code == 409 and taken.json()["code"] == "already_exists"

    state = {"container_id": "abc", "verified": True}
    moved = contributor.request("PATCH", f"{D}/revisions/1", json={
        "status": "ready", "state": state, "endpoint_http": "http://10.0.0.5:8000",
        "endpoint_grpc": "10.0.0.5:8001", "image_digest": "reg/net@sha256:" + "a" * 64,
    })  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "ready" and moved.json()["state"] == state

    whole = contributor.get(f"{D}/revisions").json()
    assert [(r["id"], r["status"], r["state"]) for r in whole] == [("web:1", "ready", state)]
    shown = reader.get(D).json()
    assert shown[0]["endpoints"]["http"] == "http://10.0.0.5:8000"
    assert "config" not in shown[0] and "state" not in shown[0]
    assert reader.get(f"{D}/revisions").status_code == 403
    assert contributor.get("/api/v1/deployments/other/revisions").json() == []

    lineage = reader.get("/api/v1/models/net/versions/1/lineage").json()
    edges = {(e["src_id"], e["relation"], e["dst_id"]) for e in lineage["downstream"]}
    assert ("net:1", "deployed_as", "web:1") in edges
    second = contributor.post(f"{D}/revisions", json={**ROW, "revision": 2})
    assert second.status_code == 201 and second.json()["id"] == "web:2"
    with open_workspace(home) as ws:
        targets = [e.target for e in audit.entries(ws) if "deployments" in e.action]
    assert sorted(targets) == ["web/1", "web:1", "web:2"]


def test_bad_input_is_a_4xx_and_records_nothing(api: dict[str, Api]) -> None:
    contributor = api["contributor"]
    answers = {
        "model": contributor.post(f"{D}/revisions", json={**ROW, "model": "ghost:1"}),
        "revision 0": contributor.post(f"{D}/revisions", json={**ROW, "revision": 0}),
        "huge revision": contributor.post(f"{D}/revisions", json={**ROW, "revision": 2**40}),
        "no creator": contributor.post(f"{D}/revisions", json={**ROW, "created_by": ""}),
        "name": contributor.post("/api/v1/deployments/-web/revisions", json=ROW),
        "status": contributor.request("PATCH", f"{D}/revisions/1", json={"status": "done"}),
        "missing": contributor.request("PATCH", f"{D}/revisions/1", json={"status": "ready"}),
        "path revision": contributor.request("PATCH", f"{D}/revisions/0", json={}),
    }
    codes = {case: answer.status_code for case, answer in answers.items()}
    assert codes == {"model": 404, "revision 0": 400, "huge revision": 400, "no creator": 400,
                     "name": 400, "status": 400, "missing": 404, "path revision": 400}  # fmt: skip
    assert all("error" in answer.json() for answer in answers.values())
    assert contributor.get(f"{D}/revisions").json() == []
