"""`run_tracked`: a command as a tracked run, with status, exit code, logs and snapshots."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.runner import LOG_ARTIFACT, run_tracked
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs

pytestmark = pytest.mark.slow

_SCRIPT = """
import os, signal, sys
import amlpkg
amlpkg.log_param("epochs", 3)
for step in range(3):
    amlpkg.log_metric("loss", 1.0 - step * 0.25, step=step)
print("training output line")
print("a warning on stderr", file=sys.stderr)
sys.stdout.flush()
mode = sys.argv[1]
if mode == "fail":
    sys.exit(3)
if mode == "signal":
    os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text(textwrap.dedent(_SCRIPT))
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "big.bin").write_bytes(b"0" * 1000)
    return root


def _run(project: Path, home: Path, mode: str) -> tuple[str, int, str, int]:
    out = io.BytesIO()
    result = run_tracked(
        [sys.executable, "train.py", mode],
        experiment="exp",
        home=home,
        cwd=project,
        stdout=out,
        stderr=out,
    )
    return result.run_id, result.exit_code, result.status, len(out.getvalue())


def test_failing_script_is_failed_with_its_exit_code(project: Path, home: Path) -> None:
    run_id, exit_code, status, echoed = _run(project, home, "fail")
    assert (exit_code, status) == (3, "failed")
    assert echoed > 0
    with open_workspace(home) as ws:
        record = queries.get_run(ws, run_id)
        assert record.status == "failed"
        assert record.exit_code == 3
        # The child logged into the runner's run through AMLPKG_RUN_ID.
        assert record.params == {"epochs": "3"}
        assert [s for s, _, _ in store_runs.metric_history(ws, run_id, "loss")] == [0, 1, 2]
        digest, _ = store_runs.get_artifact(ws, run_id, LOG_ARTIFACT)
        log = ws.artifacts.read_bytes(digest)
        assert b"training output line" in log and b"a warning on stderr" in log


def test_successful_script_and_provenance(project: Path, home: Path) -> None:
    run_id, exit_code, status, _ = _run(project, home, "ok")
    assert (exit_code, status) == (0, "completed")
    with open_workspace(home) as ws:
        record = queries.get_run(ws, run_id)
        assert record.info.command is not None and "train.py ok" in record.info.command
        assert record.info.python_version and record.info.host
        paths = {a["path"] for a in store_runs.list_artifacts(ws, run_id)}
        # tmp_path is not in git: the project is snapshotted as a tarball.
        assert "code/project.tar.gz" in paths
        digest, _ = store_runs.get_artifact(ws, run_id, "code/project.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(ws.artifacts.read_bytes(digest))) as tar:
            names = set(tar.getnames())
        assert {"train.py", "data.csv"} <= names
        assert not any(n.startswith(".venv") for n in names)
        if "environment/requirements.txt" in paths:
            digest, _ = store_runs.get_artifact(ws, run_id, "environment/requirements.txt")
            assert b"numpy" in ws.artifacts.read_bytes(digest).lower()
        else:
            assert "pip_freeze_error" in record.tags


def test_script_killed_by_signal_is_killed(project: Path, home: Path) -> None:
    run_id, exit_code, status, _ = _run(project, home, "signal")
    assert status == "killed"
    assert exit_code == 128 + 15
    with open_workspace(home) as ws:
        assert queries.get_run(ws, run_id).exit_code == -15


def test_git_project_snapshots_diff_and_untracked(project: Path, home: Path) -> None:
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    (project / ".gitignore").write_text(".venv/\n.amlpkg/\n")
    subprocess.run([*git, "add", "train.py", ".gitignore"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=project, check=True)
    (project / "train.py").write_text((project / "train.py").read_text() + "\n# tuned\n")
    run_id, _, status, _ = _run(project, home, "ok")
    assert status == "completed"
    with open_workspace(home) as ws:
        record = queries.get_run(ws, run_id)
        assert record.info.git_commit and len(record.info.git_commit) == 40
        assert record.info.git_dirty is True
        diff = ws.artifacts.read_bytes(store_runs.get_artifact(ws, run_id, "code/diff.patch")[0])
        assert b"# tuned" in diff
        untracked = store_runs.get_artifact(ws, run_id, "code/untracked.txt")[0]
        assert b"data.csv" in ws.artifacts.read_bytes(untracked)


def test_bad_commands_are_refused(home: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        run_tracked([], home=home)
    with pytest.raises(NotFoundError, match="no such program"):
        run_tracked(["definitely-not-a-program-xyz"], home=home)
    with open_workspace(home) as ws:
        # The run was created before the start failed; it must not stay "running".
        assert {r.status for r in queries.list_runs(ws)} == {"failed"}


_EXPORT_FIRST = """
import numpy as np
from sklearn.linear_model import LogisticRegression
from amlpkg.trainer import export_onnx

x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
export_onnx(model, x[:5], name="clf")  # before any log_* call
"""


def test_an_export_before_any_log_call_lands_in_the_launchers_run(
    tmp_path: Path, home: Path
) -> None:
    """Inside `amlpkg run`, export_onnx joins the run itself: artifact and parity metrics."""
    (tmp_path / "export_first.py").write_text(textwrap.dedent(_EXPORT_FIRST))
    result = run_tracked(
        [sys.executable, "export_first.py"], home=home, cwd=tmp_path, stdout=io.BytesIO()
    )
    assert result.status == "completed", result
    with open_workspace(home) as ws:
        record = queries.get_run(ws, result.run_id)
        assert "onnx_parity_max_abs_err" in record.metrics
        assert record.tags["onnx_parity"] == "passed"
        digest, size = store_runs.get_artifact(ws, result.run_id, "model/clf.onnx")
        assert size > 0 and ws.artifacts.read_bytes(digest)[:2]
