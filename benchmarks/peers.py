"""The peer servers, each in its own virtualenv under ``benchmarks/.work/venvs/``.

``python -m benchmarks.peers setup [NAME ...]`` creates the venvs with pip only
(never into the project's own venv); ``python -m benchmarks.peers status`` says
which are ready and their versions. Every peer gets the same onnxruntime release
as ours, so the model runs on identical code everywhere.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
VENVS_DIR = WORK_DIR / "venvs"
APPS_DIR = BENCH_DIR / "peer_apps"


@dataclass(frozen=True)
class Peer:
    """A peer server installed from PyPI."""

    name: str
    distribution: str  # the PyPI name whose version the report shows
    requirements: tuple[str, ...]

    @property
    def venv(self) -> Path:
        """Its virtualenv."""
        return VENVS_DIR / self.name

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.venv / "bin" / "python"

    def installed(self) -> bool:
        """Whether the venv exists and the peer imports there."""
        return self.python.exists() and self.version() is not None

    def version(self) -> str | None:
        """The installed version of :attr:`distribution` in the venv, or None."""
        if not self.python.exists():
            return None
        code = f"import importlib.metadata as m; print(m.version({self.distribution!r}))"
        proc = subprocess.run(
            [str(self.python), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        return proc.stdout.strip() or None if proc.returncode == 0 else None


def _ort_pin() -> str:
    try:
        return f"onnxruntime=={importlib.metadata.version('onnxruntime')}"
    except importlib.metadata.PackageNotFoundError:
        return "onnxruntime"


def peers() -> list[Peer]:
    """Every peer the harness knows, in the order the table lists them."""
    ort = _ort_pin()
    return [
        Peer("mlserver", "mlserver", ("mlserver==1.7.1", ort)),
        Peer("litserve", "litserve", ("litserve==0.2.19", ort)),
        Peer("bentoml", "bentoml", ("bentoml==1.4.40", ort)),
        # Bundles Triton's C++ server; its binaries run on Debian 12 (glibc 2.36).
        Peer("pytriton", "nvidia-pytriton", ("nvidia-pytriton==0.7.0", ort)),
    ]


def peer(name: str) -> Peer:
    """The peer called ``name``."""
    for candidate in peers():
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown peer {name!r}; known: {', '.join(p.name for p in peers())}")


def setup(names: list[str]) -> dict[str, str]:
    """Create each named peer's venv and pip-install it; returns name -> outcome."""
    outcomes: dict[str, str] = {}
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    for item in [peer(n) for n in names] if names else peers():
        if not item.python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(item.venv)], check=True, timeout=300)
        proc = subprocess.run(
            [str(item.python), "-m", "pip", "install", "-q", *item.requirements],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if proc.returncode == 0:
            outcomes[item.name] = f"ok ({item.distribution} {item.version()})"
        else:
            outcomes[item.name] = f"pip failed: {proc.stderr.strip().splitlines()[-1:]}"
    return outcomes


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.peers {setup,status} [NAME ...]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["setup", "status"])
    parser.add_argument("names", nargs="*", help="peers to act on (default: all)")
    args = parser.parse_args(argv)
    if args.command == "setup":
        for name, outcome in setup(args.names).items():
            print(f"{name}: {outcome}")
        return
    for item in [peer(n) for n in args.names] if args.names else peers():
        version = item.version()
        print(f"{item.name}: {version if version else 'not installed'}")


if __name__ == "__main__":
    main()
