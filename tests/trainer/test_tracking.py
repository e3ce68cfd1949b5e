"""The script API: runs with params, stepped metrics, tags and artifacts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import amlpkg
from amlpkg.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs


def test_metrics_with_steps_keep_full_history(home: Path) -> None:
    run = amlpkg.start_run("exp", run_name="r1", home=home)
    for step, loss in enumerate([0.9, 0.5, 0.2]):
        amlpkg.log_metric("loss", loss, step=step)
    amlpkg.log_metric("acc", 0.5)
    amlpkg.log_metric("acc", 0.7)  # no step: continues at 1
    amlpkg.log_metrics({"f1": 0.6, "auc": 0.8}, step=5)
    amlpkg.log_params({"lr": 0.1, "layers": 3})
    amlpkg.log_param("lr", 0.05)  # latest value wins
    amlpkg.set_tag("team", "vision")
    assert amlpkg.active_run() is run
    amlpkg.end_run()
    assert amlpkg.active_run() is None
    with open_workspace(home) as ws:
        history = store_runs.metric_history(ws, run.id, "loss")
        assert [(s, v) for s, v, _ in history] == [(0, 0.9), (1, 0.5), (2, 0.2)]
        assert [s for s, _, _ in store_runs.metric_history(ws, run.id, "acc")] == [0, 1]
        record = queries.get_run(ws, run.id)
    assert record.status == "completed"
    assert record.end_time is not None
    assert record.experiment == "exp" and record.name == "r1"
    assert record.metrics == {"loss": 0.2, "acc": 0.7, "f1": 0.6, "auc": 0.8}
    assert record.params == {"lr": "0.05", "layers": "3"}
    assert record.tags == {"team": "vision"}
    assert record.info.python_version and record.info.host


def test_log_artifact_file_and_folder(home: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("a")
    (tmp_path / "out" / "sub").mkdir()
    (tmp_path / "out" / "sub" / "b.txt").write_text("b")
    (tmp_path / "cm.txt").write_text("matrix")
    run = amlpkg.start_run(home=home)
    assert amlpkg.log_artifact(tmp_path / "cm.txt", "plots") == ["plots/cm.txt"]
    assert amlpkg.log_artifact(tmp_path / "out") == ["out/a.txt", "out/sub/b.txt"]
    with pytest.raises(InvalidArgumentError):
        amlpkg.log_artifact(tmp_path / "cm.txt", "../escape")
    with pytest.raises(NotFoundError):
        amlpkg.log_artifact(tmp_path / "missing.txt")
    digest, _ = store_runs.get_artifact(run.workspace, run.id, "out/sub/b.txt")
    assert run.workspace.artifacts.read_bytes(digest) == b"b"
    amlpkg.end_run()


def test_second_start_run_is_refused_and_bad_metrics_rejected(home: Path) -> None:
    amlpkg.start_run(home=home)
    with pytest.raises(FailedPreconditionError):
        amlpkg.start_run(home=home)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidArgumentError):
            amlpkg.log_metric("loss", bad)
    with pytest.raises(InvalidArgumentError):
        amlpkg.log_metric("loss", "high")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        amlpkg.log_param("", 1)
    amlpkg.end_run("killed")


def test_run_as_context_manager_marks_failure(home: Path) -> None:
    with pytest.raises(RuntimeError), amlpkg.start_run(home=home) as run:
        amlpkg.log_metric("x", 1.0)
        raise RuntimeError("boom")
    with open_workspace(home) as ws:
        assert queries.get_run(ws, run.id).status == "failed"


_STANDALONE = """
import sys
import amlpkg
amlpkg.log_param("alpha", 0.5)
for step in range(3):
    amlpkg.log_metric("loss", 1.0 / (step + 1), step=step)
print(amlpkg.active_run().id)
sys.stdout.flush()
if sys.argv[1] == "fail":
    raise ValueError("training diverged")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "status", "code"), [("ok", "completed", 0), ("fail", "failed", 1)]
)
def test_standalone_script_starts_and_ends_its_own_run(
    tmp_path: Path, mode: str, status: str, code: int
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_STANDALONE))
    home = tmp_path / "ws"
    done = subprocess.run(
        [sys.executable, str(script), mode],
        env={"AMLPKG_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, done.stderr
    run_id = done.stdout.strip()
    with open_workspace(home) as ws:
        record = queries.get_run(ws, run_id)
        assert record.status == status
        assert record.params == {"alpha": "0.5"}
        assert [s for s, _, _ in store_runs.metric_history(ws, run_id, "loss")] == [0, 1, 2]


def test_import_amlpkg_stays_light() -> None:
    code = (
        "import sys, amlpkg; amlpkg.log_metric; "
        "bad = [m for m in ('sklearn', 'torch', 'onnx', 'onnxruntime', 'skl2onnx', 'docker',"
        " 'kubernetes') if m in sys.modules]; print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_threads_logging_to_one_run(home: Path) -> None:
    import threading

    run = amlpkg.start_run(home=home)

    def work(worker: int) -> None:
        for step in range(20):
            amlpkg.log_metric(f"w{worker}", float(step), step=step)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in range(4):
        assert len(store_runs.metric_history(run.workspace, run.id, f"w{worker}")) == 20
    amlpkg.end_run()
