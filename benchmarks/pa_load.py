"""NVIDIA ``perf_analyzer``: the load client whose rows the targets use.

It needs Triton's model-configuration extension (``GET /v2/models/{m}/config``),
so it runs against ours and PyTriton and fails against MLServer ("failed to get
model config"); that failure is reported, not hidden. It sends binary tensors
over HTTP and raw contents over gRPC with its own random data, or, with
``--shared-memory system``, registers POSIX shared-memory regions with the server
and sends only their names over the socket. Spread over three measurement windows;
the stability check is switched off (``-s 1000``) because on 2 shared cores it
would otherwise refuse to report at all.
"""

from __future__ import annotations

import contextlib
import csv
import signal
import subprocess
import tempfile
from pathlib import Path

from benchmarks.loadgen import LoadError, LoadResult
from benchmarks.perf_analyzer import find_perf_analyzer
from benchmarks.proc_cpu import CpuSampler

WINDOWS = 3
SHM_SUFFIX = "+shm"
# Per output tensor; the models' outputs are 10 floats a sample, so 64 KiB is plenty.
OUTPUT_SHM_BYTES = 65536


def available() -> bool:
    """Whether a working perf_analyzer is installed (``python -m benchmarks.perf_analyzer``)."""
    return find_perf_analyzer() is not None


def split_path(path: str) -> tuple[str, bool]:
    """``"grpc+shm"`` -> ``("grpc", True)``: the socket protocol and whether tensors go by shm."""
    protocol, shm = path.removesuffix(SHM_SUFFIX), path.endswith(SHM_SUFFIX)
    if protocol not in ("http", "grpc"):
        raise ValueError(f"unknown path {path!r}: http, grpc, http+shm or grpc+shm")
    return protocol, shm


def command(
    binary: str, url: str, path: str, model: str, concurrency: int, duration_s: float, report: Path
) -> list[str]:
    """The perf_analyzer command line for one row (``path`` as in :func:`split_path`)."""
    protocol, shm = split_path(path)
    interval_ms = max(500, int(duration_s * 1000 / WINDOWS))
    cmd = [binary, "-m", model, "-u", url, "-i", protocol, "-b", "1"]
    cmd += ["--concurrency-range", str(concurrency), "--measurement-interval", str(interval_ms)]
    cmd += ["--max-trials", str(WINDOWS), "-s", "1000", "-f", str(report)]
    if shm:
        cmd += ["--shared-memory", "system", "--output-shared-memory-size", str(OUTPUT_SHM_BYTES)]
    return cmd


def parse_report(report: Path) -> tuple[float, float, float]:
    """(inferences/s, p50 ms, p99 ms) from perf_analyzer's ``-f`` CSV."""
    with report.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    return (
        float(row["Inferences/Second"]),
        float(row["p50 latency"]) / 1e3,
        float(row["p99 latency"]) / 1e3,
    )


def failure(output: str, returncode: int = 1) -> str:
    """What failed: a fatal signal, else the output's error lines (its last lines otherwise)."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name} (a crash in perf_analyzer)"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    return " / ".join(dict.fromkeys(errors[:3] or lines[-2:]))


def run_perf_analyzer(
    url: str,
    path: str,
    model: str,
    concurrency: int,
    duration_s: float,
    server_pid: int | None = None,
) -> LoadResult:
    """Measure ``model`` at ``url`` (host:port) over ``path`` (e.g. "http" or "grpc+shm").

    The server's process tree (``server_pid``) and perf_analyzer itself are sampled
    from /proc while it runs.
    """
    found = find_perf_analyzer()
    if found is None:
        raise LoadError("perf_analyzer is missing: python -m benchmarks.perf_analyzer install")
    binary, env = found
    with tempfile.TemporaryDirectory(prefix="bench-pa-") as tmp:
        report = Path(tmp) / "pa.csv"
        cmd = command(binary, url, path, model, concurrency, duration_s, report)
        with (
            (Path(tmp) / "pa.log").open("w+") as log,
            subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env) as proc,
        ):
            with CpuSampler(server_pid, proc.pid) as sampler:
                try:
                    proc.wait(timeout=duration_s * 3 + 60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                    raise LoadError("perf_analyzer did not finish in time") from None
            log.seek(0)
            output = log.read()
        if proc.returncode != 0 or not report.exists():
            raise LoadError(f"perf_analyzer failed: {failure(output, proc.returncode)}")
        per_s, p50_ms, p99_ms = parse_report(report)
    server_cpu, client_cpu = sampler.cores()
    return LoadResult(
        requests=round(per_s * duration_s),
        errors=0,  # perf_analyzer exits non-zero on any failed request
        seconds=duration_s,
        p50_ms=p50_ms,
        p99_ms=p99_ms,
        client_cpu=client_cpu if client_cpu is not None else float("nan"),
        tool="perf_analyzer",
        server_cpu=server_cpu,
    )
