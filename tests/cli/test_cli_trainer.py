"""The trainer's CLI commands as a subprocess: quickstart, run, runs, models, lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

AMLPKG = str(Path(sys.executable).parent / "amlpkg")


def amlpkg(
    *args: str, home: Path, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMLPKG_HOME": str(home), "COLUMNS": "200"}
    env.pop("AMLPKG_RUN_ID", None)
    done = subprocess.run(
        [AMLPKG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def quickstarted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    cwd = tmp_path_factory.mktemp("project")
    home = cwd / "ws"
    # The image build of the main job has its own tests (tests/packager/test_build_*).
    done = amlpkg("quickstart", "--no-build", home=home, cwd=cwd)
    return home, cwd, done.stdout


def test_quickstart_ends_with_the_lineage(quickstarted: tuple[Path, Path, str]) -> None:
    home, _, out = quickstarted
    assert "registered iris-classifier:1" in out
    assert "parity ok" in out
    lineage_part = out[out.index("model iris-classifier:1 @production") :]
    assert "made by run" in lineage_part and "[completed]" in lineage_part
    assert "test_accuracy" in lineage_part and "cv_accuracy" in lineage_part
    assert (home / "amlpkg.db").is_file()


def test_quickstart_optimizes_deploys_scores_and_collects(
    quickstarted: tuple[Path, Path, str],
) -> None:
    """The later links of the chain: variant, local deployment, telemetry."""
    home, cwd, out = quickstarted
    assert "optimized for cpu" in out
    assert "scored over HTTP" in out and "and gRPC" in out
    assert "telemetry from quickstart:1 reached the collector" in out
    assert "telemetry per deployment" in out
    lineage_part = out[out.index("model iris-classifier:1 @production") :]
    assert "--optimized--> variant" in lineage_part
    assert "--deployed_as--> deployment quickstart:1" in lineage_part
    shown = json.loads(amlpkg("telemetry", "show", "--json", home=home, cwd=cwd).stdout)
    rows = shown["deployments"]
    assert rows[0]["key"] == "quickstart:1" and rows[0]["requests"] >= 2
    assert rows[0]["errors"] == 0
    # Stopped at the end: the main job leaves no server running.
    status = json.loads(
        amlpkg("deployments", "show", "quickstart", "--json", home=home, cwd=cwd).stdout
    )
    assert status["serving"] is None
    assert [r["status"] for r in status["history"]] == ["stopped"]


def test_quickstart_says_clearly_when_there_is_no_docker(tmp_path: Path) -> None:
    env_home = tmp_path / "ws"
    env = {**os.environ, "AMLPKG_HOME": str(env_home), "COLUMNS": "200",
           "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}  # fmt: skip
    done = subprocess.run(
        [AMLPKG, "quickstart", "--no-deploy"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no Docker engine, so no image was built" in done.stdout


def test_json_outputs_parse(quickstarted: tuple[Path, Path, str]) -> None:
    home, cwd, _ = quickstarted
    runs = json.loads(amlpkg("runs", "list", "--json", home=home, cwd=cwd).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed"
    run_id = runs[0]["id"]
    shown = json.loads(amlpkg("runs", "show", run_id[:8], "--json", home=home, cwd=cwd).stdout)
    assert any(a["path"] == "model/model.onnx" for a in shown["artifacts"])
    models = json.loads(amlpkg("models", "list", "--json", home=home, cwd=cwd).stdout)
    assert models[0]["aliases"] == {"production": 1}
    version = json.loads(
        amlpkg("models", "show", "iris-classifier@production", "--json", home=home, cwd=cwd).stdout
    )
    assert version["run_id"] == run_id and version["signature"]["inputs"][0]["datatype"] == "FP32"
    versions = json.loads(
        amlpkg("models", "show", "iris-classifier", "--json", home=home, cwd=cwd).stdout
    )
    assert [v["version"] for v in versions] == [1]
    chain = json.loads(amlpkg("lineage", "iris-classifier:1", "--json", home=home, cwd=cwd).stdout)
    assert chain["run"]["id"] == run_id and "C" in chain["run"]["params"]
    best = json.loads(
        amlpkg("runs", "best", "--metric", "test_accuracy", "--json", home=home, cwd=cwd).stdout
    )
    assert best["id"] == run_id


def test_register_alias_and_refusals(quickstarted: tuple[Path, Path, str]) -> None:
    home, cwd, _ = quickstarted
    run_id = json.loads(amlpkg("runs", "list", "--json", home=home, cwd=cwd).stdout)[0]["id"]
    uri = f"runs:/{run_id}/model/model.onnx"
    done = amlpkg(
        "models", "register", "iris-classifier", uri, "--tag", "stage=test", home=home, cwd=cwd
    )
    assert "registered iris-classifier:2" in done.stdout
    amlpkg("models", "alias", "iris-classifier", "2", "staging", home=home, cwd=cwd)
    shown = json.loads(
        amlpkg("models", "show", "iris-classifier@staging", "--json", home=home, cwd=cwd).stdout
    )
    assert shown["version"] == 2 and shown["tags"] == {"stage": "test"}
    bad = amlpkg("models", "register", "a/b", uri, home=home, cwd=cwd, check=False)
    assert bad.returncode == 2 and "invalid model name" in bad.stderr and "hint:" in bad.stderr
    garbage = cwd / "garbage.onnx"
    garbage.write_bytes(b"garbage")
    bad = amlpkg("models", "register", "ok", str(garbage), home=home, cwd=cwd, check=False)
    assert bad.returncode == 2 and "not a valid ONNX model" in bad.stderr
    models = json.loads(amlpkg("models", "list", "--json", home=home, cwd=cwd).stdout)
    assert [m["name"] for m in models] == ["iris-classifier"]


def test_run_exits_with_the_script_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, amlpkg
            amlpkg.log_param("lr", float(sys.argv[1]))
            amlpkg.log_metric("loss", float(sys.argv[1]) * 2, step=0)
            print("epoch done")
            sys.exit(int(sys.argv[2]))
            """
        )
    )
    home = tmp_path / "ws"
    ok = amlpkg(
        "run",
        "--experiment",
        "cli",
        "--",
        sys.executable,
        "train.py",
        "0.1",
        "0",
        home=home,
        cwd=tmp_path,
    )
    assert "epoch done" in ok.stdout
    failed = amlpkg(
        "run",
        "-e",
        "cli",
        "--",
        sys.executable,
        "train.py",
        "0.3",
        "7",
        home=home,
        cwd=tmp_path,
        check=False,
    )
    assert failed.returncode == 7
    runs = json.loads(amlpkg("runs", "list", "--json", home=home, cwd=tmp_path).stdout)
    assert {(r["status"], r["exit_code"]) for r in runs} == {("completed", 0), ("failed", 7)}
    ids = [r["id"] for r in runs]
    compared = json.loads(amlpkg("runs", "compare", *ids, "--json", home=home, cwd=tmp_path).stdout)
    assert sorted(r["params"]["lr"] for r in compared) == ["0.1", "0.3"]
    table = amlpkg("runs", "compare", *ids, home=home, cwd=tmp_path).stdout
    assert "param.lr" in table and "metric.loss" in table
    lowest = json.loads(
        amlpkg("runs", "best", "-m", "loss", "--min", "--json", home=home, cwd=tmp_path).stdout
    )
    assert lowest["params"]["lr"] == "0.1"
    missing = amlpkg("runs", "show", "ffffffff", home=home, cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "no run" in missing.stderr


def test_sigterm_to_amlpkg_run_is_forwarded_and_run_killed(tmp_path: Path) -> None:
    import signal
    import time

    script = tmp_path / "slow.py"
    script.write_text(
        "import time, amlpkg\namlpkg.log_metric('x', 1.0)\nprint('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    home = tmp_path / "ws"
    env = {**os.environ, "AMLPKG_HOME": str(home)}
    env.pop("AMLPKG_RUN_ID", None)
    proc = subprocess.Popen(
        [AMLPKG, "run", "--", sys.executable, "slow.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"  # the child is running
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    runs = json.loads(amlpkg("runs", "list", "--json", home=home, cwd=tmp_path).stdout)
    assert runs[0]["status"] == "killed"
    assert runs[0]["metrics"] == {"x": 1.0}
