"""What a result was measured on: machine, OS, Python and package versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.loadgen import find_wrk
from benchmarks.peers import peers
from benchmarks.perf_analyzer import find_perf_analyzer


def _first_match(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1]
    except OSError:
        return None
    return None


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, kernel and Python."""
    mem_kb = _first_match("/proc/meminfo", "MemTotal")
    mem = f"{int(mem_kb.split()[0]) / 1024**2:.1f} GiB" if mem_kb else "unknown"
    os_name = _first_match("/etc/os-release", "PRETTY_NAME=") or platform.system()
    return {
        "CPU": _first_match("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores (visible)": str(os.cpu_count()),
        # What the benchmark may run on (a container's CPU mask can be smaller).
        "cores (affinity of this process)": str(len(os.sched_getaffinity(0))),
        "memory": mem,
        "OS": f"{os_name.strip(chr(34))}, kernel {platform.release()}",
        "Python": platform.python_version(),
    }


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of ours, onnxruntime, the clients and every installed peer."""
    found = {
        name: _version(name)
        for name in ("amlpkg", "onnxruntime", "onnx", "grpcio", "uvicorn", "numpy")
    }
    wrk = find_wrk()
    if wrk:
        proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
        text = (proc.stdout or proc.stderr).strip().splitlines()
        found["wrk"] = text[0] if text else "unknown"
    else:
        found["wrk"] = "not installed"
    found["perf_analyzer"] = perf_analyzer_version()
    for item in peers():
        found[item.distribution] = item.version() or "not installed"
    return found


def perf_analyzer_version() -> str:
    """``perf_analyzer --version``'s line, or "not installed"."""
    pa = find_perf_analyzer()
    if pa is None:
        return "not installed"
    proc = subprocess.run(
        [pa[0], "--version"], env=pa[1], capture_output=True, text=True, timeout=30, check=False
    )
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"
