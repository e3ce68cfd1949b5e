"""Access control, generated from the app's own /openapi.json: every route but health needs an
active token, every write route needs contributor or above; tokens are hashed at rest."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from tests.server.conftest import Api, make_token

PUBLIC = {("get", "/api/v1/health")}


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    schema = Api(app).get("/openapi.json").json()
    return [
        (method, path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if (method, path) not in PUBLIC
    ]


def _url(path: str, op: dict[str, Any]) -> str:
    """The path with a plausible value for each parameter (ints 1, strings 'abcd1')."""
    kinds = {p["name"]: p["schema"].get("type") for p in op.get("parameters", [])}
    return re.sub(r"\{(\w+)\}", lambda m: "1" if kinds.get(m[1]) == "integer" else "abcd1", path)


def _call(client: Api, method: str, path: str, op: dict[str, Any]) -> Any:
    return client.request(method.upper(), _url(path, op), content=b"{}")


def test_the_schema_lists_every_resource(app: FastAPI) -> None:
    paths = {path for _, path, _ in _operations(app)}
    for resource in ("experiments", "runs", "models", "lineage", "variants", "packages",
                     "deployments", "devices", "telemetry", "tokens", "audit"):  # fmt: skip
        assert any(p.startswith(f"/api/v1/{resource}") for p in paths), resource
    assert {"/v1/traces", "/v1/metrics"} <= paths


@pytest.mark.parametrize("case", ["missing", "garbage", "basic", "expired", "revoked"])
def test_every_route_refuses_a_request_without_an_active_token(
    app: FastAPI, home: Path, case: str
) -> None:
    token, token_id = make_token(home, "owner")
    headers = {
        "missing": {},
        "garbage": {"Authorization": "Bearer amlpkg_000000000000_" + "x" * 43},
        "basic": {"Authorization": "Basic b3duZXI6b3duZXI="},
        "expired": {"Authorization": f"Bearer {token}"},
        "revoked": {"Authorization": f"Bearer {token}"},
    }[case]
    with open_workspace(home) as ws:
        if case == "expired":
            ws.conn.execute("UPDATE server_tokens SET expires = 1 WHERE id = ?", (token_id,))
        if case == "revoked":
            ws.conn.execute("UPDATE server_tokens SET revoked = 1 WHERE id = ?", (token_id,))
    client = Api(app)
    refused = []
    for method, path, op in _operations(app):
        answer = client.request(method.upper(), _url(path, op), content=b"{}", headers=headers)
        if answer.status_code != 401 or answer.json()["code"] != "unauthenticated":
            refused.append((method, path, answer.status_code))
    assert refused == []
    assert Api(app).get("/api/v1/health").status_code == 200


def test_every_write_route_refuses_a_reader_and_records_nothing(
    app: FastAPI, api: dict[str, Api], home: Path
) -> None:
    writes = [(m, p, op) for m, p, op in _operations(app) if m != "get"]
    assert len(writes) >= 12
    let_through = [
        (m, p, answer.status_code)
        for m, p, op in writes
        if (answer := _call(api["reader"], m, p, op)).status_code != 403
    ]
    assert let_through == []
    with open_workspace(home) as ws:
        assert audit.entries(ws) == []


def test_owner_routes_refuse_a_contributor(api: dict[str, Api]) -> None:
    c = api["contributor"]
    assert c.get("/api/v1/tokens").status_code == 403
    assert c.get("/api/v1/audit").status_code == 403
    made = c.post("/api/v1/tokens", json={"role": "owner", "name": "escalate"})
    assert made.status_code == 403


def test_owners_manage_tokens_and_every_change_is_audited(
    api: dict[str, Api], app: FastAPI
) -> None:
    owner = api["owner"]
    made = owner.post("/api/v1/tokens", json={"role": "reader", "name": "ci", "expires": "1d"})
    assert made.status_code == 201, made.text
    token, token_id = made.json()["token"], made.json()["info"]["id"]
    assert Api(app, token).get("/api/v1/runs").status_code == 200
    assert owner.request("DELETE", f"/api/v1/tokens/{token_id}").json()["active"] is False
    assert Api(app, token).get("/api/v1/runs").status_code == 401
    log = owner.get("/api/v1/audit").json()
    assert [(e["action"], e["target"]) for e in log] == [
        ("DELETE /api/v1/tokens/{token_id}", f"token:{token_id}"),
        ("POST /api/v1/tokens", f"token:{token_id}"),
    ]
    assert all(e["actor"].startswith("token:") and e["role"] == "owner" for e in log)
    listed = {t["id"]: t for t in owner.get("/api/v1/tokens").json()}
    assert "token" not in listed[token_id] and listed[token_id]["revoked"] is not None


def test_tokens_are_hashed_at_rest(
    api: dict[str, Api], role_tokens: dict[str, str], home: Path
) -> None:
    made = api["owner"].post("/api/v1/tokens", json={"role": "contributor", "name": "x"}).json()
    secrets = [*role_tokens.values(), made["token"]]
    with open_workspace(home) as ws:
        ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = {r[0] for r in ws.conn.execute("SELECT token_sha256 FROM server_tokens")}
    assert {hashlib.sha256(s.encode()).hexdigest() for s in secrets} <= stored
    everything = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret.encode() not in everything
        assert secret[len("amlpkg_") + 13 :].encode() not in everything  # the random part
