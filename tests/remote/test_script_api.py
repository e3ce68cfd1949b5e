"""The script API against a real server: logging, export_onnx, a flaky network, many writers."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.remote.conftest import TeamServer, amlpkg, run_script

pytestmark = pytest.mark.slow

TRAIN = """
import amlpkg
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from amlpkg.trainer import export_onnx

x, y = load_iris(return_X_y=True)
amlpkg.log_params({"C": 0.5, "max_iter": 200})
for step in range(20):
    amlpkg.log_metric("loss", 1.0 / (step + 1))
amlpkg.log_metrics({"acc": 0.9, "f1": 0.8}, step=7)
amlpkg.set_tag("stage", "test")
open("notes.txt", "w").write("hello")
amlpkg.log_artifact("notes.txt", "docs")
result = export_onnx(LogisticRegression(C=0.5, max_iter=200).fit(x, y), x[:10], name="iris")
print(result.uri)
"""

LOOP = """
import json, sys, time
import amlpkg

steps, progress = int(sys.argv[1]), sys.argv[2]
run = amlpkg.start_run("flaky")
slowest = 0.0
for step in range(steps):
    t = time.perf_counter()
    amlpkg.log_metric("loss", step / 10, step=step)
    amlpkg.log_metric("implicit", step)
    slowest = max(slowest, time.perf_counter() - t)
    with open(progress, "w") as out:
        out.write(str(step))
    time.sleep(0.01)
print(json.dumps({"run": run.id, "slowest_s": slowest}))
"""


def _history(team: TeamServer, run_id: str, key: str) -> list[tuple[int, float]]:
    with team.api() as api:
        answer = api.get(f"/runs/{run_id}/metrics/{key}")
    assert answer.status_code == 200, answer.text
    return [(p["step"], p["value"]) for p in answer.json()["points"]]


def _git_commit(folder: Path) -> str:
    """Make ``folder`` a git repository with one commit; its id."""
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (folder / "train.txt").write_text("tracked")
    subprocess.run([*git, "add", "train.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_script_logs_params_metrics_artifacts_and_its_onnx_export(
    team: TeamServer, tmp_path: Path
) -> None:
    commit = _git_commit(tmp_path)
    done = run_script(TRAIN, tmp_path, team.env())
    out, err = done.communicate()
    assert done.returncode == 0, err
    uri = out.strip().splitlines()[-1]
    run_id = uri.split("/")[1]
    assert uri == f"runs:/{run_id}/model/iris.onnx"
    with team.api() as api:
        run = api.get(f"/runs/{run_id}").json()
        artifacts = {a["path"] for a in api.get(f"/runs/{run_id}/artifacts").json()}
        notes = api.get(f"/runs/{run_id}/artifacts/docs/notes.txt").content
    assert run["status"] == "completed" and run["user"] == "test-contributor"
    # Where it ran, as the embedded workspace records it (the user is the token's name).
    assert run["git_commit"] == commit and run["git_dirty"] is True  # the script is untracked
    assert run["host"] == socket.gethostname()
    assert run["python_version"] == platform.python_version()
    assert "script_" in run["command"]
    assert run["params"] == {"C": "0.5", "max_iter": "200"}
    assert run["metrics"]["loss"] == pytest.approx(1 / 20)
    assert run["metrics"]["acc"] == 0.9 and run["metrics"]["onnx_parity_max_abs_err"] >= 0
    assert run["tags"]["stage"] == "test" and run["tags"]["onnx_parity"] == "passed"
    assert artifacts == {"docs/notes.txt", "model/iris.onnx"}
    assert notes == b"hello"
    assert [s for s, _ in _history(team, run_id, "loss")] == list(range(20))
    # The export registers from the server's copy of the artifact.
    made = amlpkg("models", "register", "iris", uri, "--tracking-uri", team.url, "--json",
                  env={"AMLPKG_TRACKING_TOKEN": team.tokens["contributor"]})  # fmt: skip
    assert json.loads(made.stdout)["run_id"] == run_id
    # Nothing is left in the spool folder once everything was sent.
    assert list((tmp_path / "cache" / "amlpkg" / "spool").glob("*")) == []


def test_a_server_stopped_mid_training_neither_slows_nor_loses_the_loop(
    team: TeamServer, tmp_path: Path
) -> None:
    progress = tmp_path / "progress"
    steps = 300
    script = run_script(LOOP, tmp_path, team.env(), str(steps), str(progress), wait=False)

    def reached(step: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            text = progress.read_text().strip() if progress.exists() else ""
            if text.isdigit() and int(text) >= step:
                return
            assert script.poll() is None, script.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)

    reached(50)
    team.stop()  # mid-training: the loop keeps going while the server is away
    reached(200)
    team.start()  # back on the same port before the script ends
    out, err = script.communicate(timeout=120)
    assert script.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["slowest_s"] < 0.05  # a log call only appends to the spool
    history = _history(team, result["run"], "loss")
    assert history == [(s, s / 10) for s in range(steps)]
    implicit = _history(team, result["run"], "implicit")
    assert implicit == [(s, float(s)) for s in range(steps)]
    with team.api() as api:
        assert api.get(f"/runs/{result['run']}").json()["status"] == "completed"


def test_values_unsent_at_exit_stay_spooled_and_go_with_the_next_run(
    team: TeamServer, tmp_path: Path
) -> None:
    with team.api("contributor") as api:
        run_id = api.post("/runs", json={"experiment": "later"}).json()["id"]
    team.stop()  # the port now refuses connections
    env = {**team.env(), "AMLPKG_RUN_ID": run_id, "AMLPKG_TRACKING_FLUSH_TIMEOUT_S": "1"}
    code = "import amlpkg\nfor i in range(50):\n    amlpkg.log_metric('m', i)\nprint('done')"
    started = time.monotonic()
    done = run_script(code, tmp_path, env)
    out, err = done.communicate()
    assert done.returncode == 0 and out.strip() == "done", err
    assert time.monotonic() - started < 30  # the exit waits a bounded time only
    spooled = list((tmp_path / "cache" / "amlpkg" / "spool").glob("*.jsonl"))
    assert len(spooled) == 1 and run_id in spooled[0].name
    team.start()
    # The next script on that server sends what the first one left, then its own values.
    again = run_script("import amlpkg\namlpkg.log_metric('other', 1)", tmp_path, team.env())
    _, err = again.communicate()
    assert again.returncode == 0, err
    assert _history(team, run_id, "m") == [(i, float(i)) for i in range(50)]
    assert list((tmp_path / "cache" / "amlpkg" / "spool").glob("*")) == []


def test_sixteen_concurrent_scripts_lose_no_metric(team: TeamServer, tmp_path: Path) -> None:
    code = (
        "import amlpkg\nrun = amlpkg.start_run('many')\n"
        "for i in range(200):\n    amlpkg.log_metrics({'a': i, 'b': -i}, step=i)\n"
        "print(run.id)"
    )
    scripts = [run_script(code, tmp_path, team.env(), wait=False) for _ in range(16)]
    run_ids = []
    for script in scripts:
        out, err = script.communicate(timeout=240)
        assert script.returncode == 0, err
        assert len(out.strip()) == 32, (out, err)
        run_ids.append(out.strip())
    assert len(set(run_ids)) == 16
    for run_id in run_ids:
        assert _history(team, run_id, "a") == [(i, float(i)) for i in range(200)]
        assert len(_history(team, run_id, "b")) == 200
