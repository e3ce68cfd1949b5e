"""`amlpkg runs list --search/--sort` and `runs best` against a real server and against the
workspace it serves: the same rows, filtered and sorted by the store in both cases."""

from __future__ import annotations

import json

import pytest

from tests.remote.conftest import TeamServer, _isolated_user, amlpkg, team

__all__ = ["_isolated_user", "team"]  # the real-server fixtures of tests/remote
pytestmark = pytest.mark.slow


def test_search_and_sort_print_the_same_rows_remote_and_embedded(team: TeamServer) -> None:
    with team.api("contributor") as api:
        for i in range(6):
            run = api.post("/runs", json={"experiment": "cli", "name": f"c-{i}"}).json()["id"]
            body = {"params": {"opt": "sgd" if i % 2 else "adam"},
                    "metrics": [{"key": "acc", "value": i / 10, "step": 0}]}  # fmt: skip
            api.post(f"/runs/{run}/log-batch", json=body).raise_for_status()
            api.post(f"/runs/{run}/end", json={"status": "completed"}).raise_for_status()
    env = team.env("reader")
    home = ["--home", str(team.home)]
    query = ["--search", "metrics.acc >= 0.2 params.opt = adam", "--sort", "metrics.acc", "--asc"]
    for command in (["runs", "list", *query, "--json"], ["runs", "list", *query],
                    ["runs", "best", "-m", "acc", "--min"]):  # fmt: skip
        remote = amlpkg(*command, env=env).stdout
        assert remote == amlpkg(*command, *home).stdout, command
    listed = json.loads(amlpkg("runs", "list", *query, "--json", env=env).stdout)
    assert [r["name"] for r in listed] == ["c-2", "c-4"]
    assert "(acc=0, experiment cli)" in amlpkg("runs", "best", "-m", "acc", "--min", env=env).stdout

    for where in (env, None):
        bad = amlpkg("runs", "list", "--search", "metrics.acc > high", *([] if where else home),
                     env=where, check=False)  # fmt: skip
        assert bad.returncode != 0
        assert "compares with a number" in bad.stdout + bad.stderr
        assert "Traceback" not in bad.stderr
