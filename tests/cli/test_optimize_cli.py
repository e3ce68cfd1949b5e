"""``amlpkg optimize`` and the variants in ``amlpkg lineage``, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amlpkg.trainer.registry import register
from tests.packager.test_optimize import make_mlp

pytestmark = pytest.mark.slow

AMLPKG = str(Path(sys.executable).parent / "amlpkg")


def amlpkg(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMLPKG_HOME": str(home), "COLUMNS": "250"}
    return subprocess.run(
        [AMLPKG, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("optimize-cli")
    register("mlp", make_mlp(root / "mlp.onnx"), home=root / "ws")
    register("broken", make_mlp(root / "bad.onnx", outlier=1000.0), home=root / "ws")
    return root / "ws"


def test_optimize_json_auto_and_lineage(home: Path) -> None:
    done = amlpkg("optimize", "broken:1", "--auto", "--max-slowdown", "1000", "--json", home=home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    by_kind = {v["kind"]: v for v in report["variants"]}
    assert set(by_kind) == {"graph", "int8-dynamic", "int8-static"}
    assert not by_kind["int8-dynamic"]["accepted"] and not by_kind["int8-dynamic"]["chosen"]
    assert "less accurate" in by_kind["int8-dynamic"]["reason"]
    assert by_kind["graph"]["chosen"] and report["chosen"] == by_kind["graph"]["id"]
    assert report["synthetic_validation"] is True
    assert set(by_kind["graph"]["measurements"]["batches"]) == {"1", "8", "32"}
    chain = json.loads(amlpkg("lineage", "broken:1", "--json", home=home).stdout)
    details = {e["dst_id"]: e.get("detail", "") for e in chain["downstream"]}
    assert "chosen" in details[by_kind["graph"]["id"]]
    assert "refused" in details[by_kind["int8-static"]["id"]]
    shown = amlpkg("lineage", "broken:1", home=home)
    assert shown.returncode == 0 and "variant broken:1/cpu/graph-fp32/" in shown.stdout
    assert "cpu graph fp32, chosen" in shown.stdout


def test_optimize_human_output_says_synthetic_and_why(home: Path) -> None:
    done = amlpkg("optimize", "mlp:1", "--precision", "fp32", "--auto", home=home)
    assert done.returncode == 0, done.stderr
    assert "variants of mlp:1 for cpu" in done.stdout
    assert "SYNTHETIC" in done.stdout and "--auto:" in done.stdout
    cuda = amlpkg("optimize", "mlp:1", "--target", "cuda", home=home)
    assert cuda.returncode == 0, cuda.stderr
    assert "cannot measure here" in cuda.stdout and "not measured" in cuda.stdout


def test_bad_inputs_exit_2_with_a_hint_and_store_nothing(home: Path, tmp_path: Path) -> None:
    before = json.loads(amlpkg("lineage", "mlp:1", "--json", home=home).stdout)["downstream"]
    np.savez(tmp_path / "wrong.npz", features=np.zeros((4, 16), np.float32))
    for args, text in (
        (("optimize", "mlp:7"), "has no version 7"),
        (("optimize", "ghost"), "no model named 'ghost'"),
        (("optimize", "mlp:1", "--validation", str(tmp_path / "wrong.npz")), "lacks arrays"),
        (("optimize", "mlp:1", "--calibration", str(tmp_path / "none.npz")), "does not exist"),
        (("optimize", "mlp:1", "--target", "cuda", "--precision", "int8"), "offers no int8"),
    ):
        done = amlpkg(*args, home=home)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "error:" in done.stderr and text in done.stderr
        assert "Traceback" not in done.stderr
    after = json.loads(amlpkg("lineage", "mlp:1", "--json", home=home).stdout)["downstream"]
    assert after == before
