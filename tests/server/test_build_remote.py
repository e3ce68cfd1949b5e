"""`amlpkg build` / `amlpkg package` against a real team server: the variant `optimize --auto`
chose on the server (or the version itself) comes down sha256 checked, the build runs here, and
the package row and its lineage edges are recorded on the server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server
from tests.packager.test_optimize import make_mlp
from tests.remote.conftest import TeamServer, _isolated_user, amlpkg, team

__all__ = ["_isolated_user", "team"]  # the real-server fixtures of tests/remote
pytestmark = pytest.mark.slow
V = "/models/mlp/versions/1"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version_and_chosen_variant(team: TeamServer, tmp_path: Path) -> tuple[str, str, str]:
    """``(version sha256, variant id, variant sha256)`` on the server."""
    model = make_mlp(tmp_path / "mlp.onnx")
    variant_file = make_mlp(tmp_path / "variant.onnx", seed=1)
    with TeamClient(Server(team.url, team.tokens["contributor"])) as client:
        made = client.upload_version("mlp", model, run=None, description=None)
    sha = _sha(variant_file)
    row = {
        "id": "mlp:1/cpu/graph-fp32/0badcafe", "parent": "mlp:1", "kind": "graph",
        "target": "cpu", "precision": "fp32", "sha256": sha, "size": variant_file.stat().st_size,
        "providers": [{"name": "cpu"}], "recipe": {}, "measurements": {}, "accuracy": {},
        "accepted": True, "reason": "chosen by --auto", "chosen": True,
    }  # fmt: skip
    with team.api("contributor") as api:
        api.put(f"{V}/variant-files", params={"sha256": sha},
                content=variant_file.read_bytes()).raise_for_status()  # fmt: skip
        api.post(f"{V}/variants", json={"variants": [row]}).raise_for_status()
    return str(made["sha256"]), row["id"], sha


def test_build_ships_the_servers_chosen_variant_and_records_the_package_there(
    team: TeamServer, tmp_path: Path
) -> None:
    version_sha, variant_id, variant_sha = _version_and_chosen_variant(team, tmp_path)
    env = team.env("contributor")
    built = json.loads(amlpkg("build", "mlp:1", "--format", "triton", "--output",
                              str(tmp_path / "repo"), "--json", env=env).stdout)  # fmt: skip
    assert built["variant_id"] == variant_id and built["model_ref"] == "mlp:1"
    assert _sha(tmp_path / "repo" / "mlp" / "1" / "model.onnx") == variant_sha

    orig = tmp_path / "orig"
    original = json.loads(amlpkg("build", "mlp:1", "--original", "--format", "triton",
                                 "--output", str(orig), "--json", env=env).stdout)  # fmt: skip
    assert original["variant_id"] is None
    assert _sha(orig / "mlp" / "1" / "model.onnx") == version_sha

    with team.api("reader") as api:
        packages = {p["id"]: p for p in api.get("/packages").json()}
        lineage = api.get(f"{V}/lineage").json()
    assert set(packages) == {built["id"], original["id"]}
    assert packages[built["id"]]["created"] == built["created"]
    edges = {(e["src_id"], e["relation"], e["dst_id"]) for e in lineage["downstream"]}
    assert ("mlp:1", "packaged_as", built["id"]) in edges
    assert (variant_id, "packaged_as", built["id"]) in edges
    assert ("mlp:1", "packaged_as", original["id"]) in edges
    with open_workspace(team.home) as ws:
        assert [e.action for e in audit.entries(ws)].count("POST /api/v1/packages") == 2


def test_a_reader_is_refused_before_the_build_and_nothing_is_recorded(
    team: TeamServer, tmp_path: Path
) -> None:
    _version_and_chosen_variant(team, tmp_path)
    output = tmp_path / "repo"
    done = amlpkg("build", "mlp:1", "--format", "triton", "--output", str(output),
                  env=team.env("reader"), check=False)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "a reader token may not record what `amlpkg build` makes" in done.stderr
    assert not output.exists()
    with team.api("reader") as api:
        assert api.get("/packages").json() == []


def test_the_package_route_refuses_what_it_cannot_trace(team: TeamServer, tmp_path: Path) -> None:
    _version_and_chosen_variant(team, tmp_path)
    row = {"id": "pkg-20260101000000-abcdef", "model_name": "mlp", "model_version": 1,
           "flavor": "cpu", "platform": "linux/amd64", "format": "triton"}  # fmt: skip
    with team.api("contributor") as api:
        for changes, status in (({"model_version": 9}, 404), ({"variant_id": "x:1/cpu/a"}, 404),
                                ({"id": "../../etc"}, 400), ({"format": "zip"}, 400)):  # fmt: skip
            answer = api.post("/packages", json={**row, **changes})
            assert answer.status_code == status, (changes, answer.text)
            assert "error" in answer.json()
        assert api.post("/packages", json=row).status_code == 201
        assert api.post("/packages", json=row).status_code == 409
    with team.api("reader") as api:
        assert api.post("/packages", json=row).status_code == 403
