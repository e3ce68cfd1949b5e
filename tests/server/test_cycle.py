"""The whole write -> read cycle in-process: run, metrics, artifact, version, alias, lineage."""

from __future__ import annotations

from pathlib import Path

from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from tests.server.conftest import Api, onnx_bytes, sha256

V1 = "/api/v1"


def test_run_metrics_artifact_version_alias_lineage(api: dict[str, Api], home: Path) -> None:
    c = api["contributor"]
    run = c.post(f"{V1}/runs", json={"experiment": "exp", "name": "r1", "tags": {"t": "1"}})
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    assert run.json()["user"] == "contributor"
    batch = {
        "params": {"lr": "0.1"},
        "metrics": [
            {"key": "loss", "value": 1.0, "step": 0},
            {"key": "loss", "value": 0.5, "step": 1},
            {"key": "acc", "value": 0.9},
        ],
        "tags": {"stage": "train"},
    }
    logged = c.post(f"{V1}/runs/{run_id}/log-batch", json=batch)
    assert logged.json() == {"params": 1, "metrics": 3, "tags": 1}

    model = onnx_bytes()
    put = c.put(
        f"{V1}/runs/{run_id}/artifacts/model/net.onnx",
        params={"sha256": sha256(model)},
        content=model,
        headers={"content-type": "application/octet-stream"},
    )
    assert put.status_code == 201, put.text
    assert put.json() == {"path": "model/net.onnx", "sha256": sha256(model), "size": len(model)}
    ended = c.post(f"{V1}/runs/{run_id}/end", json={"status": "completed"})
    assert ended.json()["status"] == "completed"

    version = c.post(f"{V1}/models/net/versions", json={"source": f"runs:/{run_id}/model/net.onnx"})
    assert version.status_code == 201, version.text
    assert version.json()["version"] == 1 and version.json()["run_id"] == run_id
    alias = c.put(f"{V1}/models/net/aliases/production", json={"version": 1})
    assert alias.json()["aliases"] == ["production"]

    r = api["reader"]
    got = r.get(f"{V1}/runs/{run_id[:8]}").json()
    assert got["params"] == {"lr": "0.1"} and got["metrics"] == {"loss": 0.5, "acc": 0.9}
    assert got["tags"] == {"t": "1", "stage": "train"}
    history = r.get(f"{V1}/runs/{run_id}/metrics/loss").json()["points"]
    assert [(p["step"], p["value"]) for p in history] == [(0, 1.0), (1, 0.5)]
    assert [a["path"] for a in r.get(f"{V1}/runs/{run_id}/artifacts").json()] == ["model/net.onnx"]
    assert r.get(f"{V1}/runs/{run_id}/artifacts/model/net.onnx").content == model
    assert [(e["name"], e["runs"]) for e in r.get(f"{V1}/experiments").json()] == [("exp", 1)]
    assert r.get(f"{V1}/models").json()[0]["aliases"] == {"production": 1}
    assert r.get(f"{V1}/models/net/aliases/production").json()["version"] == 1

    lineage = r.get(f"{V1}/models/net/versions/1/lineage").json()
    assert lineage["run"]["id"] == run_id
    assert lineage["model_version"]["source"] == f"runs:/{run_id}/model/net.onnx"
    node = r.get(f"{V1}/lineage/model_version/net:1").json()
    assert [(e["src_kind"], e["src_id"], e["relation"]) for e in node["upstream"]] == [
        ("run", run_id, "produced")
    ]
    from_run = r.get(f"{V1}/lineage/run/{run_id}").json()
    assert [e["dst_id"] for e in from_run["downstream"]] == ["net:1"]

    with open_workspace(home) as ws:
        actions = [e.action for e in reversed(audit.entries(ws))]
    assert actions == [
        "POST /api/v1/runs",
        "POST /api/v1/runs/{run}/log-batch",
        "PUT /api/v1/runs/{run}/artifacts/{path}",
        "POST /api/v1/runs/{run}/end",
        "POST /api/v1/models/{name}/versions",
        "PUT /api/v1/models/{name}/aliases/{alias}",
    ]


def test_upload_a_model_version_streamed_and_checked(api: dict[str, Api], home: Path) -> None:
    c = api["contributor"]
    model = onnx_bytes()
    url = f"{V1}/models/up/versions/upload"
    wrong = c.post(url, params={"sha256": "0" * 64}, content=model)
    assert wrong.status_code == 400 and "sha256" in wrong.json()["error"]
    ok = c.post(url, params={"sha256": sha256(model), "filename": "relu.onnx"}, content=model)
    assert ok.status_code == 201, ok.text
    assert ok.json()["source"] == "relu.onnx" and ok.json()["signature"]["inputs"][0]["name"] == "x"
    bad = c.post(url, params={"sha256": sha256(b"nope")}, content=b"nope")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("model.onnx is not a valid ONNX model")
    assert api["reader"].get(f"{V1}/models/up/versions").json()[0]["version"] == 1
    assert not [p for p in (home / ".server-uploads").iterdir()]  # nothing left behind


def test_registration_writes_its_audit_row_in_its_own_transaction(
    api: dict[str, Api], home: Path
) -> None:
    c = api["contributor"]
    run_id = c.post(f"{V1}/runs", json={"experiment": "exp"}).json()["id"]
    model = onnx_bytes()
    c.put(f"{V1}/runs/{run_id}/artifacts/m.onnx", params={"sha256": sha256(model)}, content=model)
    body = {"source": f"runs:/{run_id}/m.onnx", "aliases": ["prod"], "tags": {"k": "v"}}
    made = c.post(f"{V1}/models/net/versions", json=body)
    assert made.status_code == 201, made.text
    assert (made.json()["aliases"], made.json()["tags"]) == (["prod"], {"k": "v"})
    refused = c.post(f"{V1}/models/net/versions", json={**body, "aliases": ["no good"]})
    assert refused.status_code == 400 and "invalid alias" in refused.json()["error"]
    with open_workspace(home) as ws:
        rows = [(e.action, e.target) for e in audit.entries(ws) if "models" in e.action]
    assert rows == [("POST /api/v1/models/{name}/versions", "net:1")]  # once, not twice
    assert api["reader"].get(f"{V1}/models/net/aliases/prod").json()["version"] == 1
