"""Closed-loop load generation: ``wrk`` for HTTP, :mod:`benchmarks.grpc_load` for gRPC.

Both run as separate processes (they share the 2 cores with the server, so they
must be cheap, and their CPU is measured from here as that child's user+sys
time over the wall time of the measured window). Every run is bounded in time.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.payloads import Payload

REPO_ROOT = Path(__file__).resolve().parent.parent

# wrk prints one line with this prefix from the Lua ``done`` hook.
_WRK_MARK = "BENCH_JSON "
_WRK_SCRIPT = """\
local f = assert(io.open({body_path}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%f,"p99_us":%f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class LoadError(RuntimeError):
    """A load generator could not run (missing tool, crashed, no answer)."""


@dataclass(frozen=True)
class LoadResult:
    """One measured window of a closed-loop run."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # cores the client process used on average (user+sys / wall)
    tool: str
    first_error: str = ""
    server_cpu: float | None = None  # cores of the server's process tree, when measured

    @property
    def req_per_s(self) -> float:
        """Successful requests per second over the measured window."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def find_wrk() -> str | None:
    """Path of the ``wrk`` binary (Debian package ``wrk``), or None."""
    return shutil.which("wrk")


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    base_url: str, payload: Payload, concurrency: int, duration_s: float, warmup_s: float
) -> LoadResult:
    """POST ``payload`` to ``base_url`` with ``concurrency`` connections (1 wrk thread)."""
    wrk = find_wrk()
    if wrk is None:
        raise LoadError("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_path = Path(tmp) / "body.bin"
        body_path.write_bytes(payload.body)
        headers = "\n".join(
            f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in payload.headers.items()
        )
        script = Path(tmp) / "post.lua"
        script.write_text(
            _WRK_SCRIPT.format(
                body_path=_lua_string(str(body_path)), headers=headers, mark=_WRK_MARK
            ),
            encoding="utf-8",
        )
        url = base_url.rstrip("/") + payload.path
        if warmup_s > 0:
            _wrk_once(wrk, script, url, concurrency, warmup_s)
        cpu0 = _children_cpu()
        stats = _wrk_once(wrk, script, url, concurrency, duration_s)
        cpu1 = _children_cpu()
    seconds = stats["duration_us"] / 1e6
    errors = sum(int(stats[k]) for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        requests=max(0, int(stats["requests"]) - int(stats["status"])),
        errors=errors,
        seconds=seconds,
        p50_ms=stats["p50_us"] / 1e3,
        p99_ms=stats["p99_us"] / 1e3,
        client_cpu=(cpu1 - cpu0) / max(seconds, 1e-9),
        tool="wrk",
        first_error=f"{int(stats['status'])} non-2xx answers" if stats["status"] else "",
    )


def _wrk_once(
    wrk: str, script: Path, url: str, concurrency: int, duration_s: float
) -> dict[str, float]:
    # wrk takes whole seconds only.
    seconds = max(1, math.ceil(duration_s))
    cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    try:
        proc = subprocess.run(
            [*cmd, url], capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise LoadError(f"wrk did not finish within {seconds + 30} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith(_WRK_MARK):
            parsed: dict[str, float] = json.loads(line[len(_WRK_MARK) :])
            return parsed
    raise LoadError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout}")


def run_grpc(
    target: str, payload: Payload, concurrency: int, duration_s: float, warmup_s: float
) -> LoadResult:
    """Run :mod:`benchmarks.grpc_load` in its own process against ``target`` (host:port)."""
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        body_path = Path(tmp) / "request.bin"
        body_path.write_bytes(payload.body)
        cmd = [sys.executable, "-m", "benchmarks.grpc_load", "--target", target]
        cmd += ["--body", str(body_path), "-c", str(concurrency)]
        cmd += ["-d", str(duration_s), "-w", str(warmup_s)]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=duration_s + warmup_s + 60,
                cwd=REPO_ROOT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LoadError("the gRPC client did not finish in time") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise LoadError(f"gRPC client failed (exit {proc.returncode}): {proc.stderr.strip()}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    return LoadResult(
        requests=int(stats["requests"]),
        errors=int(stats["errors"]),
        seconds=float(stats["seconds"]),
        p50_ms=float(stats["p50_ms"]),
        p99_ms=float(stats["p99_ms"]),
        client_cpu=float(stats["client_cpu"]),
        tool="grpc.aio",
        first_error=str(stats.get("first_error", "")),
    )
