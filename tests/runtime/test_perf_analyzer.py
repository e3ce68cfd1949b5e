"""NVIDIA perf_analyzer (HTTP and gRPC) runs against the server without errors.

Install it with ``python -m benchmarks.perf_analyzer install`` (plus apt ``libb64-0d``);
skipped when missing, except in CI (``CI=true``) where it must be there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.perf_analyzer import find_perf_analyzer
from tests.runtime.conftest import ServerProcess
from tests.services import require


@pytest.mark.slow
@pytest.mark.perf_analyzer
@pytest.mark.parametrize("protocol", ["http", "grpc", "grpc-streaming", "http-shm", "grpc-shm"])
def test_perf_analyzer_runs_clean(server: ServerProcess, protocol: str) -> None:
    found = find_perf_analyzer()
    require(
        found is not None,
        "perf_analyzer is not installed (python -m benchmarks.perf_analyzer install)",
    )
    assert found is not None
    path, env = found
    url = server.http_url if protocol.startswith("http") else server.grpc_url
    streaming = ["--streaming"] if protocol == "grpc-streaming" else []
    if protocol.endswith("-shm"):
        # Tensors in system shared memory both ways, as perf_analyzer lays them out.
        streaming = ["--shared-memory", "system", "--output-shared-memory-size", "4096"]
    # Short, count-based windows and a loose stability bound: this checks that
    # perf_analyzer works against the server (config, metadata, infer), not speed.
    result = subprocess.run(
        [
            path, "-m", "mlp", "-u", url, "-i", protocol.partition("-")[0], *streaming,
            "--concurrency-range", "1:2",
            "--measurement-mode", "count_windows",
            "--measurement-request-count", "50",
            "--stability-percentage", "1000",
            "--max-trials", "5",
        ],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Concurrency: 2, throughput:" in output
    assert "error" not in output.lower()


def test_find_perf_analyzer_reports_missing_or_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERF_ANALYZER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_perf_analyzer(tmp_path) is None
    # A binary whose libraries are missing (no libb64) counts as not installed.
    fake = tmp_path / "bin" / "perf_analyzer"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'perf_analyzer: error while loading shared libraries: libb64.so.0d' >&2\n"
        "exit 127\n"
    )
    fake.chmod(0o755)
    assert find_perf_analyzer(tmp_path) is None
    fake.write_text("#!/bin/sh\necho usage\n")
    found = find_perf_analyzer(tmp_path)
    assert found is not None and found[0] == str(fake)
