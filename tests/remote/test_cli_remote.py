"""The CLI against a server: `amlpkg run`, and the same rows as against the workspace it serves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.remote.conftest import TeamServer, amlpkg

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
import amlpkg
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
from amlpkg.trainer import export_onnx

x, y = load_iris(return_X_y=True)
print("training on", len(x), "rows")
export_onnx(DecisionTreeClassifier(max_depth=2).fit(x, y), x[:5], name="tree")
amlpkg.log_param("depth", 2)
amlpkg.log_metric("acc", 0.95)
sys.exit(int(sys.argv[1]))
"""


def test_amlpkg_run_against_a_server_and_the_same_output_as_embedded(
    team: TeamServer, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    env = team.env()
    done = amlpkg("run", "-e", "cli", "--name", "first", "--", sys.executable, "train.py", "0",
                  env=env, cwd=tmp_path)  # fmt: skip
    assert "training on 150 rows" in done.stdout
    failed = amlpkg("run", "-e", "cli", "--", sys.executable, "train.py", "3",
                    env=env, cwd=tmp_path, check=False)  # fmt: skip
    assert failed.returncode == 3
    with team.api() as api:
        runs = api.get("/runs", params={"experiment": "cli"}).json()
        assert [(r["status"], r["exit_code"]) for r in runs] == [("failed", 3), ("completed", 0)]
        run_id = runs[1]["id"]
        assert "training on 150 rows" in api.get(f"/runs/{run_id}/logs").text
        paths = {a["path"] for a in api.get(f"/runs/{run_id}/artifacts").json()}
    assert {"model/tree.onnx", "logs/output.log", "environment/requirements.txt"} <= paths
    assert runs[1]["params"] == {"depth": "2"} and runs[1]["metrics"]["acc"] == 0.95
    amlpkg("models", "register", "tree", f"runs:/{run_id}/model/tree.onnx", env=env)
    amlpkg("models", "alias", "tree", "1", "prod", env=env)

    # Every read command prints the same against the server and against its workspace.
    home = ["--home", str(team.home)]
    for command in (
        ["runs", "list"],
        ["runs", "list", "--json"],
        ["runs", "show", run_id],
        ["runs", "compare", run_id, runs[0]["id"]],
        ["runs", "best", "-m", "acc"],
        ["models", "list"],
        ["models", "show", "tree"],
        ["models", "show", "tree@prod"],
        ["lineage", "tree:1"],
    ):
        remote = amlpkg(*command, env=env).stdout
        embedded = amlpkg(*command, *home).stdout
        assert remote == embedded, command
    assert "made by run " + run_id in remote


def test_a_reader_cannot_register_and_is_told_why(team: TeamServer, tmp_path: Path) -> None:
    env = team.env("reader")
    done = amlpkg("models", "alias", "nothing", "1", "prod", env=env, check=False)
    assert done.returncode == 2
    assert "a reader token may not do this" in done.stderr
    assert json.loads(amlpkg("models", "list", "--json", env=env).stdout) == []
