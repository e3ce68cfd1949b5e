"""`amlpkg run --target docker`: a tracked run in a container built from the run's environment
(real Docker engine), and `amlpkg runs reproduce` in the same image.

Here beside the batch tests because both are this change's "beyond one machine" work; the
targets live in the packager (``amlpkg.packager.targets``), the protocol in the trainer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import docker_available, require

pytestmark = pytest.mark.slow

SCRIPT = """\
import random, sys
import six  # from requirements.txt: installed into the image offline
import amlpkg
rng = random.Random(int(sys.argv[1]))
amlpkg.log_param("seed", sys.argv[1])
amlpkg.log_metric("score", sum(rng.random() for _ in range(1000)))
print("python", sys.version.split()[0], "six", six.__version__)
"""


def _amlpkg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cli = str(Path(sys.executable).parent / "amlpkg")
    return subprocess.run(
        [cli, *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )


def test_a_docker_run_is_tracked_with_its_image_and_reproduces_the_same_metrics(
    tmp_path: Path,
) -> None:
    require(docker_available(), "a Docker engine is needed")
    from amlpkg.store.workspace import open_workspace
    from amlpkg.trainer.store import queries
    from amlpkg.trainer.store import runs as store_runs

    home, code = tmp_path / "home", tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(SCRIPT)
    (code / "requirements.txt").write_text("six==1.16.0\n")

    first = _amlpkg("run", "--home", str(home), "--target", "docker", "--", "python",
                    "train.py", "7", cwd=code)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert "python 3.11" in first.stdout and "six 1.16.0" in first.stdout
    with open_workspace(home) as ws:
        (run,) = queries.list_runs(ws)
    assert run.status == "completed" and run.params == {"seed": "7"}
    assert run.tags["target"] == "docker" and run.tags["target.cwd"] == str(code)
    assert run.tags["target.image_id"].startswith("sha256:")

    again = _amlpkg("runs", "reproduce", run.id, "--home", str(home), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    with open_workspace(home) as ws:
        copy = next(r for r in queries.list_runs(ws) if r.id != run.id)
        artifacts = {a["path"] for a in store_runs.list_artifacts(ws, run.id)}
    assert copy.tags["reproduces"] == run.id
    assert copy.tags["target.image_id"] == run.tags["target.image_id"]
    assert copy.metrics == run.metrics and copy.params == run.params
    assert "environment/target-requirements.txt" in artifacts
    assert "logs/output.log" in artifacts


def test_a_failing_script_in_a_container_is_a_failed_run_with_its_exit_code(
    tmp_path: Path,
) -> None:
    require(docker_available(), "a Docker engine is needed")
    (tmp_path / "fail.py").write_text("import sys; print('bye'); sys.exit(3)\n")
    done = _amlpkg("run", "--home", str(tmp_path / "home"), "--target", "docker", "--",
                   "python", "fail.py", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 3
    assert "bye" in done.stdout and "failed" in done.stderr
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", "name=amlpkg-run-"],
                            capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert listed.stdout.strip() == ""  # no container left behind


def test_an_unknown_target_is_refused_before_a_run_starts(tmp_path: Path) -> None:
    done = _amlpkg("run", "--home", str(tmp_path / "home"), "--target", "ftp://u@h", "--",
                   "python", "-c", "1", cwd=tmp_path)  # fmt: skip
    said = " ".join(done.stderr.split())  # the console wraps long lines
    assert done.returncode == 2 and "unknown target" in said and "ssh://" in said
    assert not (tmp_path / "home" / "amlpkg.db").exists()
