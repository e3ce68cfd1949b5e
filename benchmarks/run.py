"""Run every benchmark in one go and write ``benchmarks/RESULTS.md``.

``python -m benchmarks.run [--duration S] [--only SERVER,...] [--models mlp,cnn]
[--paths http,grpc,http+shm,grpc+shm] [--concurrency 1,4,16] [--socket-clients]``:
in-process ONNX Runtime first (the limit), then each server in turn, one model at a
time, measured by NVIDIA perf_analyzer over HTTP, gRPC and system shared memory.
Each server is started and killed by the harness; every loop is bounded in time.
Default full run (amlpkg and PyTriton: 48 rows of 10 s; bare grpcio floors: 12 more):
about 14 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import sysinfo
from benchmarks.inprocess import make_session, run_inprocess
from benchmarks.jobs import Settings, bench_server, jobs_for
from benchmarks.loadgen import find_wrk
from benchmarks.method import method_notes
from benchmarks.models import INPUT_NAME, all_models
from benchmarks.pa_load import available as pa_available
from benchmarks.report import markdown, rich_tables, sections
from benchmarks.servers import ServerDef, server_defs
from benchmarks.targets import OURS, PATHS, Row, check_targets

BENCH_DIR = Path(__file__).resolve().parent
CONCURRENCY = (1, 4, 16)
DEFAULT_DURATION_S = 10.0
# The servers perf_analyzer can measure, and bare grpcio (the gRPC target's ceiling).
DEFAULT_SERVERS = ("amlpkg", "pytriton", "grpcio-aio-floor", "grpcio-sync-floor")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def split(text: str) -> list[str]:
    """Comma-separated items, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The run's options; exits with 2 on a bad one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    add = parser.add_argument
    add("--duration", type=_positive, default=DEFAULT_DURATION_S, help="seconds per row")
    add("--warmup", type=float, default=2.0, help="seconds of warm-up (socket clients)")
    add("--inprocess-duration", type=_positive, default=2.0, help="seconds per in-process point")
    add("--only", default=",".join(DEFAULT_SERVERS), help="servers, comma-separated")
    add("--skip-peers", action="store_true", help="only ours and in-process")
    add("--models", default="mlp,cnn", help="models, comma-separated")
    add("--paths", default=",".join(PATHS), help="http, grpc, http+shm, grpc+shm")
    add("--protocols", dest="paths", help="old name of --paths")
    add("--concurrency", default=",".join(map(str, CONCURRENCY)))
    add("--perf-analyzer", choices=["auto", "off"], default="auto", help="off: no pa rows")
    add("--socket-clients", action="store_true", help="also wrk (HTTP) and grpc.aio rows")
    add("--output", type=Path, default=BENCH_DIR / "RESULTS.md", help="where to write results")
    add(
        "--workdir",
        type=Path,
        default=BENCH_DIR / ".work" / "run",
        help="emptied, then holds the generated repositories and server logs",
    )
    add("--no-write", action="store_true", help="print only, write no file")
    add(
        "--control-plane",
        action="store_true",
        help="then the team server beside MLflow (benchmarks.control_plane_mlflow, ~5 min)",
    )
    args = parser.parse_args(argv)
    levels = split(args.concurrency)
    if not levels or not all(level.isdigit() and int(level) > 0 for level in levels):
        parser.error("--concurrency takes positive integers, e.g. 1,4,16")
    bad = [p for p in split(args.paths) if p not in PATHS]
    if bad or not split(args.paths):
        parser.error(f"--paths takes {', '.join(PATHS)}; got {', '.join(bad) or 'nothing'}")
    return args


def settings_from(args: argparse.Namespace, skipped: dict[str, str]) -> Settings:
    """The jobs' settings; what cannot run here goes into ``skipped`` with why."""
    pa_on = args.perf_analyzer == "auto" and pa_available()
    if args.perf_analyzer == "auto" and not pa_on:
        skipped["perf_analyzer"] = "not installed: python -m benchmarks.perf_analyzer install"
    clients: tuple[str, ...] = ()
    if args.socket_clients:
        clients = ("wrk", "grpc.aio") if find_wrk() else ("grpc.aio",)
        if find_wrk() is None:
            skipped["wrk rows"] = "wrk is not installed (apt-get install wrk)"
    return Settings(
        paths=tuple(split(args.paths)),
        levels=tuple(int(c) for c in split(args.concurrency)),
        duration_s=args.duration,
        warmup_s=args.warmup,
        perf_analyzer=pa_on,
        socket_clients=clients,
    )


def select(args: argparse.Namespace, skipped: dict[str, str]) -> list[ServerDef]:
    """The servers to run; those not installed go into ``skipped`` with why."""
    wanted = set(split(args.only))
    runnable: list[ServerDef] = []
    for defn in server_defs():
        if defn.name not in wanted or (args.skip_peers and defn.category != "ours"):
            continue
        why = defn.available()
        if why:
            skipped[defn.name] = why
        else:
            runnable.append(defn)
    return runnable


_MARKER = ".benchmarks-workdir"


def _reset_workdir(workdir: Path) -> bool:
    """Empty ``workdir`` if it is ours (has the marker) or new; False if it holds other files."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / _MARKER).exists():
            return False
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / _MARKER).touch()
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit code 1 when a row of our server failed, 2 on bad options."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    console = Console() if Console().is_terminal else Console(width=200)
    started = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()[0]
    models = [m for m in all_models() if m.name in split(args.models)]
    unknown = (set(split(args.only)) - {d.name for d in server_defs()}) | (
        set(split(args.models)) - {m.name for m in all_models()}
    )
    if unknown or not models:
        console.print(
            f"[red]error:[/red] unknown server or model: {', '.join(sorted(unknown)) or '-'}; "
            f"servers: {', '.join(d.name for d in server_defs())}; models: mlp, cnn"
        )
        return 2
    workdir: Path = (
        args.workdir.resolve()
    )  # servers run in it; logs and repositories stay there for a look afterwards
    if not _reset_workdir(workdir):
        console.print(f"[red]error:[/red] {workdir} is not empty and not a benchmark workdir")
        return 2
    skipped: dict[str, str] = {}
    settings = settings_from(args, skipped)
    runnable = select(args, skipped)
    with console.status("in-process ONNX Runtime (the limit)..."):
        inproc = run_inprocess(models, args.inprocess_duration)
    rows: list[Row] = []
    total = sum(len(jobs_for(d, m, settings)) for d in runnable for m in models)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("servers", total=total)
        for model in models:
            expected = make_session(model).run(None, {INPUT_NAME: model.sample(1)})[0]
            for defn in runnable:
                if not jobs_for(defn, model, settings):
                    continue  # e.g. an HTTP-only peer with --paths grpc
                progress.update(task, description=f"starting {defn.name} ({model.name})")
                rows += bench_server(
                    defn,
                    model,
                    settings,
                    workdir,
                    expected,
                    lambda _row, label: progress.update(task, advance=1, description=label),
                )
    # The default configuration's targets, then those of each other configuration of ours.
    configs = sorted({r.server for r in rows if r.category == "ours"} - {OURS})
    targets = check_targets(rows, inproc)
    for config in configs:
        targets += check_targets(rows, inproc, config)
    for table in rich_tables(rows, inproc, targets):
        console.print(table)
    if not args.no_write:
        old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        meta = {
            "Run": {
                "date (UTC)": started.strftime("%Y-%m-%d %H:%M"),
                "duration per row": f"{args.duration:g} s",
                "wall time": f"{(dt.datetime.now(dt.UTC) - started).total_seconds() / 60:.1f} min",
                "command": "python -m benchmarks.run " + " ".join(argv),
                # Other work on the machine shows here; numbers from a busy machine are low.
                "load average (1 min) at start / end": f"{load_start:.2f} / "
                f"{os.getloadavg()[0]:.2f}",
            },
            "Machine": sysinfo.machine(),
            "Versions": sysinfo.versions(),
        }
        notes = method_notes(args.duration, args.warmup, DEFAULT_DURATION_S, skipped, models)
        # The marked sections other tools write (benchmarks.ab, profile_point,
        # batch_scoring, the image facts) are kept across runs.
        text = markdown(rows, inproc, targets, meta, notes, sections(old))
        args.output.write_text(text, encoding="utf-8")
        console.print(f"wrote {args.output}")
    ours_failed = [r for r in rows if r.category == "ours" and r.result is None]
    code = 1 if ours_failed else 0
    if args.control_plane:  # its own section of the same file, after the serving rows
        from benchmarks import control_plane_mlflow

        more = ["--output", str(args.output)] + (["--no-write"] if args.no_write else [])
        code = max(code, control_plane_mlflow.main(more))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
