"""Find or install NVIDIA ``perf_analyzer`` on machines whose glibc is too old for its wheel.

The PyPI ``perf-analyzer`` wheels need glibc 2.38; ``tritonclient==2.41.0``'s wheel still
carries ``bin/perf_analyzer``, which runs on glibc 2.36 with Debian's ``libb64-0d`` and the
``libcudart`` of the pip ``nvidia-cuda-runtime-cu12`` package (no GPU needed).

    python -m benchmarks.perf_analyzer install   # into .tools/ (git-ignored)
    python -m benchmarks.perf_analyzer which     # print the binary it would use

``libb64-0d`` comes from apt (``apt-get install -y libb64-0d``); CI installs it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = ROOT / ".tools"
TRITONCLIENT_WITH_BINARY = "tritonclient==2.41.0"
_MEMBER = "tritonclient-2.41.0.data/data/bin/perf_analyzer"
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12"


def _cuda_lib_dirs(dest: Path) -> list[Path]:
    root = dest / "cuda" / "nvidia"
    return sorted(p for p in root.glob("*/lib") if p.is_dir()) if root.is_dir() else []


def find_perf_analyzer(dest: Path = DEFAULT_DEST) -> tuple[str, dict[str, str]] | None:
    """The perf_analyzer binary and the environment it needs, or None when missing.

    Looks at ``$PERF_ANALYZER``, then ``dest/bin/perf_analyzer``, then ``PATH``.
    """
    env = dict(os.environ)
    candidates = [os.environ.get("PERF_ANALYZER"), str(dest / "bin" / "perf_analyzer")]
    path = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    path = path or shutil.which("perf_analyzer")
    if path is None:
        return None
    lib_dirs = [str(p) for p in _cuda_lib_dirs(dest)]
    if lib_dirs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [*lib_dirs, *filter(None, [env.get("LD_LIBRARY_PATH")])]
        )
    probe = subprocess.run(
        [path, "--help"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    if "error while loading shared libraries" in probe.stderr:
        return None
    return path, env


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def install_perf_analyzer(dest: Path | str = DEFAULT_DEST) -> Path:
    """Put ``perf_analyzer`` in ``dest/bin`` and libcudart in ``dest/cuda``; returns the binary."""
    dest = Path(dest)
    binary = dest / "bin" / "perf_analyzer"
    if not binary.exists():
        with tempfile.TemporaryDirectory() as tmp:
            _pip("download", "--no-deps", "--dest", tmp, TRITONCLIENT_WITH_BINARY)
            wheel = next(Path(tmp).glob("tritonclient-2.41.0-*.whl"))
            binary.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as archive, archive.open(_MEMBER) as src:
                binary.write_bytes(src.read())
        binary.chmod(0o755)
    if not _cuda_lib_dirs(dest):
        _pip("install", "--no-deps", "--target", str(dest / "cuda"), CUDA_RUNTIME)
    if find_perf_analyzer(dest) is None:
        print(
            "perf_analyzer is installed but cannot start: install libb64 "
            "(apt-get install -y libb64-0d)",
            file=sys.stderr,
        )
    return binary


def main(argv: list[str] | None = None) -> None:
    """``install`` or ``which``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["install", "which"])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    if args.command == "install":
        print(install_perf_analyzer(args.dest))
        return
    found = find_perf_analyzer(args.dest)
    if found is None:
        sys.exit("perf_analyzer not found: run python -m benchmarks.perf_analyzer install")
    print(found[0])


if __name__ == "__main__":
    main()
