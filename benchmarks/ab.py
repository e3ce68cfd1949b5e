"""A/B: our runtime at an older commit against the current checkout, with perf_analyzer.

``python -m benchmarks.ab [--base 39f7f68] [--rounds 3] [--duration 5]`` extracts the
base commit's tree with ``git archive`` (symlinks kept: before the layout change the
``amlpkg`` package reached ``runtime/`` through a link) into ``benchmarks/.work/ab/``,
runs ``python -m amlpkg.runtime`` from it with that folder first on PYTHONPATH, and
checks which file ``amlpkg.runtime`` is imported from on each side before measuring.
The two servers run side by side (both started once) and are measured in turns,
A B B A A B ..., so slow drift of a shared machine hits both alike. The result is the
ratio of the medians (current / base) per model, path and concurrency; it is written
as a section of ``RESULTS.md`` that ``python -m benchmarks.run`` keeps.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import sysinfo
from benchmarks.ab_report import Measured, ab_markdown, summarize
from benchmarks.loadgen import LoadError
from benchmarks.models import all_models
from benchmarks.pa_load import run_perf_analyzer, split_path
from benchmarks.report import put_section
from benchmarks.servers import Endpoint, ServerDef, serve, server_defs
from benchmarks.servers import ours_from as _ours_from

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
DEFAULT_BASE = "39f7f68"  # the runtime before the hardening (issue 9)
SECTION = "ab"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options; exits with 2 on a bad one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    add = parser.add_argument
    add("--base", default=DEFAULT_BASE, help="the older commit (A)")
    add("--rounds", type=int, default=3, help="A/B pairs per point (1..20)")
    add("--duration", type=float, default=5.0, help="seconds per measurement (0.5..60)")
    add("--models", default="mlp", help="models, comma-separated")
    add("--paths", default="http,grpc", help="http, grpc, http+shm, grpc+shm")
    add("--concurrency", default="16", help="levels, comma-separated")
    add("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    add("--workdir", type=Path, default=BENCH_DIR / ".work" / "ab")
    add("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1..20")
    if not 0.5 <= args.duration <= 60:
        parser.error("--duration must be 0.5..60 seconds")
    args.models = [m for m in args.models.split(",") if m]
    if not args.models or set(args.models) - {m.name for m in all_models()}:
        parser.error("--models takes mlp and/or cnn")
    args.paths = [p for p in args.paths.split(",") if p]
    try:
        [split_path(p) for p in args.paths]
    except ValueError as exc:
        parser.error(str(exc))
    levels = args.concurrency.split(",")
    if not all(level.isdigit() and int(level) > 0 for level in levels):
        parser.error("--concurrency takes positive integers")
    args.concurrency = [int(level) for level in levels]
    if not args.paths:
        parser.error("--paths is empty")
    return args


def resolve_commit(ref: str) -> str:
    """The full hash of ``ref`` in this repository (raises ValueError when unknown)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise ValueError(f"unknown commit {ref!r}")
    return proc.stdout.strip()


def extract(commit: str, dest: Path) -> Path:
    """The tree of ``commit`` under ``dest/<hash>`` (made once; git archive keeps links)."""
    tree = dest / commit[:12]
    if (tree / ".complete").exists():
        return tree
    tree.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE) as git:
        subprocess.run(["tar", "-x", "-C", str(tree)], stdin=git.stdout, timeout=120, check=True)
        git.wait(timeout=120)
    if git.returncode != 0:
        raise RuntimeError(f"git archive {commit} failed")
    (tree / ".complete").touch()
    return tree


def imported_from(pythonpath: str | None) -> str:
    """Which file ``amlpkg.runtime`` loads from with ``pythonpath`` first (None: as is)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [sys.executable, "-c", "import amlpkg.runtime as r; print(r.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"amlpkg.runtime does not import: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def _measure(endpoint: Endpoint, path: str, model: str, level: int, seconds: float) -> Measured:
    protocol, _ = split_path(path)
    url = endpoint.http_base.removeprefix("http://") if protocol == "http" else endpoint.grpc_target
    try:
        result = run_perf_analyzer(url or "", path, model, level, seconds, endpoint.pid)
    except LoadError as exc:
        return Measured(None, None, str(exc))
    return Measured(result.req_per_s, result.server_cpu, "")


def main(argv: list[str] | None = None) -> int:
    """Run the A/B; 0 when every point was measured on both sides, 1 otherwise."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        base = resolve_commit(args.base)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workdir: Path = args.workdir.resolve()
    tree = extract(base, workdir / "trees")
    old_file, new_file = imported_from(str(tree)), imported_from(None)
    if not old_file.startswith(str(tree)) or new_file.startswith(str(tree)):
        print(f"error: imports are mixed up: base {old_file}, current {new_file}", file=sys.stderr)
        return 2
    print(f"A (base {base[:9]}): {old_file}\nB (current): {new_file}")
    current = next(d for d in server_defs() if d.name == "amlpkg")
    sides: list[tuple[str, ServerDef]] = [("A", _ours_from(tree, f"amlpkg@{base[:9]}"))]
    sides.append(("B", current))
    samples: dict[tuple[str, str, str, int], list[Measured]] = {}
    started = dt.datetime.now(dt.UTC)
    for model in (m for m in all_models() if m.name in args.models):
        with contextlib.ExitStack() as stack:
            endpoints = {
                side: stack.enter_context(serve(defn, model, workdir / "run" / side / model.name))
                for side, defn in sides
            }
            for path in args.paths:
                for level in args.concurrency:
                    for rnd in range(args.rounds):
                        # A B, then B A: neither side always runs right after a server idled.
                        for side in ("A", "B") if rnd % 2 == 0 else ("B", "A"):
                            got = _measure(endpoints[side], path, model.name, level, args.duration)
                            samples.setdefault((side, model.name, path, level), []).append(got)
                            rps = "failed" if got.rps is None else f"{got.rps:,.0f} req/s"
                            print(f"round {rnd + 1} {side} {model.name} {path} c{level}: {rps}")
    summary = summarize(samples)
    meta = {
        "date (UTC)": started.strftime("%Y-%m-%d %H:%M"),
        "A": f"{base[:9]} (runtime from {old_file.removeprefix(str(ROOT) + '/')})",
        "B": f"current checkout ({new_file.removeprefix(str(ROOT) + '/')})",
        "method": f"{args.rounds} rounds x {args.duration:g} s per side, "
        "interleaved A B B A A B ...",
        "command": "python -m benchmarks.ab " + " ".join(argv),
        "load average (1 min) at end": f"{os.getloadavg()[0]:.2f}",
        "CPU": f"{sysinfo.machine()['CPU']}, {len(os.sched_getaffinity(0))} cores",
    }
    text = ab_markdown(summary, meta)
    print(text)
    if not args.no_write:
        old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        args.output.write_text(put_section(old, SECTION, text), encoding="utf-8")
        print(f"wrote the A/B section of {args.output}")
    return 0 if all(s.ratio is not None for s in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
