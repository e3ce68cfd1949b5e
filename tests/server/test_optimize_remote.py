"""`amlpkg optimize` against a real team server: the model comes down (sha256 checked), the variants
are made and measured here, their files and rows go up (contributor, audited, checked), and the
server records them with their lineage edges, as the embedded path records them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amlpkg.errors import IntegrityError
from amlpkg.server import audit
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.config import Server
from amlpkg.trainer.remote.model_files import download_version_file
from tests.packager.test_optimize import make_mlp
from tests.remote.conftest import TeamServer, _isolated_user, amlpkg, team

__all__ = ["_isolated_user", "team"]  # the real-server fixtures of tests/remote
pytestmark = pytest.mark.slow


def _register(team: TeamServer, tmp_path: Path) -> dict[str, object]:
    model = make_mlp(tmp_path / "mlp.onnx")
    with TeamClient(Server(team.url, team.tokens["contributor"])) as client:
        return client.upload_version("mlp", model, run=None, description=None)


def test_optimize_runs_here_and_records_the_variants_on_the_server(
    team: TeamServer, tmp_path: Path
) -> None:
    version = _register(team, tmp_path)
    work = tmp_path / "user"
    work.mkdir()
    done = amlpkg("optimize", "mlp:1", "--precision", "fp32", "--auto", "--max-slowdown", "1000",
                  "--json", env=team.env("contributor"), cwd=work)  # fmt: skip
    report = json.loads(done.stdout)
    assert report["model"] == "mlp:1" and report["chosen"]
    assert list(work.iterdir()) == []  # no embedded workspace on the user's machine

    with team.api("reader") as api:
        stored = api.get("/models/mlp/versions/1/variants").json()
    assert [v["id"] for v in stored] == [v["id"] for v in report["variants"]]
    chosen = next(v for v in stored if v["chosen"])
    assert chosen["id"] == report["chosen"] and chosen["accepted"]
    assert chosen["measurements"]["batches"]  # measured on this machine, kept on the server
    assert chosen["created"] == next(v for v in report["variants"] if v["chosen"])["created"]
    with open_workspace(team.home) as ws:
        assert ws.artifacts.verified_path(chosen["sha256"]).stat().st_size == chosen["size"]
        actions = [e.action for e in audit.entries(ws)]
    assert actions.count("PUT /api/v1/models/{name}/versions/{version}/variant-files") == len(
        stored
    )
    assert "POST /api/v1/models/{name}/versions/{version}/variants" in actions

    # The lineage the server answers names the variants, as the embedded one does.
    chain = json.loads(amlpkg("lineage", "mlp:1", "--json", env=team.env("reader")).stdout)
    details = {e["dst_id"]: e.get("detail", "") for e in chain["downstream"]}
    assert "chosen" in details[chosen["id"]]
    assert version["sha256"] != chosen["sha256"]

    # A second --auto choice clears the first one, on the server as on a workspace.
    again = amlpkg("optimize", "mlp:1", "--precision", "fp32", "--auto", "--max-slowdown", "1000",
                   "--json", env=team.env("contributor"), cwd=work)  # fmt: skip
    second = json.loads(again.stdout)["chosen"]
    with team.api("reader") as api:
        flags = {v["id"]: v["chosen"] for v in api.get("/models/mlp/versions/1/variants").json()}
    assert flags[second] and not flags[chosen["id"]]


def test_a_reader_may_not_optimize_and_nothing_is_recorded(
    team: TeamServer, tmp_path: Path
) -> None:
    _register(team, tmp_path)
    done = amlpkg("optimize", "mlp:1", "--precision", "fp32", env=team.env("reader"), check=False)
    assert done.returncode == 2
    assert "a reader token may not record what `amlpkg optimize` makes" in done.stderr
    assert "Traceback" not in done.stderr
    with team.api("reader") as api:
        assert api.get("/models/mlp/versions/1/variants").json() == []


def test_a_download_that_does_not_match_the_digest_is_refused(
    team: TeamServer, tmp_path: Path
) -> None:
    _register(team, tmp_path)
    dest = tmp_path / "model.onnx"
    client = TeamClient(Server(team.url, team.tokens["reader"]))
    with client, pytest.raises(IntegrityError, match="not the recorded"):
        download_version_file(client, "mlp", 1, "0" * 64, dest)
    assert not dest.exists()
