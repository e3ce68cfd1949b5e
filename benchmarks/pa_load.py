"""NVIDIA ``perf_analyzer`` as a second, C++ load client for the V2 servers.

It needs Triton's model-configuration extension (``GET /v2/models/{m}/config``),
so it runs against ours and PyTriton and fails against MLServer ("failed to get
model config"); that failure is reported, not hidden. It sends binary tensors
over HTTP and raw contents over gRPC with its own random data. Spread over three
measurement windows; the stability check is switched off (``-s 1000``) because
on 2 shared cores it would otherwise refuse to report at all.
"""

from __future__ import annotations

import csv
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.loadgen import LoadError, LoadResult
from benchmarks.perf_analyzer import find_perf_analyzer

WINDOWS = 3


def available() -> bool:
    """Whether a working perf_analyzer is installed (``python -m benchmarks.perf_analyzer``)."""
    return find_perf_analyzer() is not None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_perf_analyzer(
    url: str, protocol: str, model: str, concurrency: int, duration_s: float
) -> LoadResult:
    """Measure ``model`` at ``url`` (host:port) over ``protocol`` ("http" or "grpc")."""
    found = find_perf_analyzer()
    if found is None:
        raise LoadError("perf_analyzer is missing: python -m benchmarks.perf_analyzer install")
    binary, env = found
    interval_ms = max(500, int(duration_s * 1000 / WINDOWS))
    with tempfile.TemporaryDirectory(prefix="bench-pa-") as tmp:
        report = Path(tmp) / "pa.csv"
        cmd = [binary, "-m", model, "-u", url, "-i", protocol, "-b", "1"]
        cmd += ["--concurrency-range", str(concurrency), "--measurement-interval", str(interval_ms)]
        cmd += ["--max-trials", str(WINDOWS), "-s", "1000", "-f", str(report)]
        cpu0, wall0 = _children_cpu(), time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                env=env,
                timeout=duration_s * 3 + 60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LoadError("perf_analyzer did not finish in time") from None
        cpu1, wall1 = _children_cpu(), time.perf_counter()
        if proc.returncode != 0 or not report.exists():
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            raise LoadError(f"perf_analyzer failed: {' / '.join(lines[-2:])}")
        with report.open(newline="") as handle:
            row = next(csv.DictReader(handle))
    per_s = float(row["Inferences/Second"])
    return LoadResult(
        requests=round(per_s * duration_s),
        errors=0,  # perf_analyzer exits non-zero on any failed request
        seconds=duration_s,
        p50_ms=float(row["p50 latency"]) / 1e3,
        p99_ms=float(row["p99 latency"]) / 1e3,
        # Over its whole run (start-up and all windows), so slightly pessimistic.
        client_cpu=(cpu1 - cpu0) / max(wall1 - wall0, 1e-9),
        tool="perf_analyzer",
    )
