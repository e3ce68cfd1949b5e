"""The whole harness end to end with tiny durations: in-process ORT, our server, RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from benchmarks.loadgen import find_wrk
from benchmarks.run import main


def test_run_measures_our_server_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    code = main(
        [
            "--skip-peers",
            "--models",
            "mlp",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--inprocess-duration",
            "0.1",
            "--concurrency",
            "2",
            "--perf-analyzer",
            "off",
            "--output",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )
    assert code == 0
    text = out.read_text()
    assert "## Machine" in text and "- **onnxruntime**:" in text
    assert "## Targets" in text
    assert "| mlp | 1 | off |" in text  # an in-process point
    # Our server started, answered correctly (checked before measuring) and was measured.
    rows = [line for line in text.splitlines() if line.startswith("| amlpkg |")]
    protocols = {"http", "grpc"} if find_wrk() else {"grpc"}
    assert {line.split(" | ")[1] for line in rows} == protocols
    assert not [line for line in rows if "failed" in line], rows
    assert (tmp_path / "work" / "amlpkg" / "mlp" / "repo" / "mlp" / "1" / "model.onnx").exists()


def test_unknown_server_or_model_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    assert main(["--only", "tritonx", "--output", str(out)]) == 2
    assert main(["--models", "resnet", "--output", str(out)]) == 2
    assert not out.exists()


def test_a_foreign_folder_is_never_emptied(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    code = main(["--skip-peers", "--workdir", str(tmp_path), "--output", str(tmp_path / "R.md")])
    assert code == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"
