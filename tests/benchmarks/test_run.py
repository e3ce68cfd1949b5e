"""The whole harness end to end with tiny durations: in-process ORT, our server, RESULTS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.loadgen import find_wrk
from benchmarks.pa_load import available as pa_available
from benchmarks.run import main, parse
from tests.services import require

TINY = ["--models", "mlp", "--duration", "1", "--warmup", "0", "--inprocess-duration", "0.1"]
TINY += ["--concurrency", "2", "--only", "amlpkg", "--paths", "http,grpc"]


def _amlpkg_rows(text: str) -> list[list[str]]:
    return [line.split(" | ") for line in text.splitlines() if line.startswith("| amlpkg |")]


def test_run_with_socket_clients_writes_results_and_keeps_the_ab_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("old\n<!-- section:ab begin -->\nA/B kept\n<!-- section:ab end -->\n")
    args = [*TINY, "--socket-clients", "--perf-analyzer", "off", "--output", str(out)]
    assert main([*args, "--workdir", str(tmp_path / "work")]) == 0
    text = out.read_text()
    assert "## Machine" in text and "- **onnxruntime**:" in text and "- **perf_analyzer**" in text
    assert "## Targets" in text
    assert "| mlp | 1 | off | " in text  # an in-process point
    assert "A/B kept" in text and "old\n" not in text
    # Our server started, answered correctly (checked before measuring) and was measured.
    rows = _amlpkg_rows(text)
    paths = {"http", "grpc"} if find_wrk() else {"grpc"}
    assert {row[1] for row in rows} == paths
    assert not [row for row in rows if "failed" in " ".join(row)], rows
    assert all(row[10] != "-" for row in rows)  # server CPU measured on every row
    assert (tmp_path / "work" / "amlpkg" / "mlp" / "repo" / "mlp" / "1" / "model.onnx").exists()


def test_run_with_perf_analyzer_measures_both_paths(tmp_path: Path) -> None:
    require(pa_available(), "needs perf_analyzer (python -m benchmarks.perf_analyzer install)")
    out = tmp_path / "RESULTS.md"
    assert main([*TINY, "--output", str(out), "--workdir", str(tmp_path / "work")]) == 0
    rows = _amlpkg_rows(out.read_text())
    assert {(row[1], row[2]) for row in rows} == {
        ("http", "perf_analyzer"),
        ("grpc", "perf_analyzer"),
    }
    assert all(row[10] != "-" and row[11] != "-" for row in rows), rows  # server, client CPU


def test_defaults_are_the_issue_11_run() -> None:
    args = parse([])
    assert args.only == "amlpkg,pytriton,grpcio-aio-floor,grpcio-sync-floor"
    assert args.paths == "http,grpc,http+shm,grpc+shm"
    assert args.concurrency == "1,4,16" and args.duration == 10.0
    assert not args.socket_clients


def test_unknown_server_model_or_path_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    assert main(["--only", "tritonx", "--output", str(out)]) == 2
    assert main(["--models", "resnet", "--output", str(out)]) == 2
    with pytest.raises(SystemExit) as info:
        main(["--paths", "http,udp", "--output", str(out)])
    assert info.value.code == 2
    assert not out.exists()


def test_a_foreign_folder_is_never_emptied(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    code = main(["--skip-peers", "--workdir", str(tmp_path), "--output", str(tmp_path / "R.md")])
    assert code == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"
