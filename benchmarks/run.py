"""Run every benchmark in one go and write ``benchmarks/RESULTS.md``.

``python -m benchmarks.run [--duration S] [--only SERVER,...] [--models mlp,cnn]
[--skip-peers]``: in-process ONNX Runtime first (the limit), then each server in
turn, one model at a time, HTTP (wrk) and gRPC (grpc.aio client) at concurrency
1, 4 and 16. Each server is started and killed by the harness; every loop is
bounded in time. Default full run: about 12 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from benchmarks import sysinfo
from benchmarks.inprocess import make_session, run_inprocess
from benchmarks.loadgen import LoadError, LoadResult, find_wrk, run_grpc, run_wrk
from benchmarks.method import method_notes
from benchmarks.models import INPUT_NAME, BenchModel, all_models
from benchmarks.pa_load import available as pa_available
from benchmarks.pa_load import run_perf_analyzer
from benchmarks.payloads import Payload, Wire, build_payload
from benchmarks.report import Row, check_targets, markdown, rich_tables
from benchmarks.servers import (
    Endpoint,
    ServerDef,
    ServerStartError,
    serve,
    server_defs,
)
from benchmarks.verify import WrongAnswerError, check_answer

BENCH_DIR = Path(__file__).resolve().parent
CONCURRENCY = (1, 4, 16)
DEFAULT_DURATION_S = 8.0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--duration", type=_positive, default=DEFAULT_DURATION_S, help="seconds measured per row"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per row")
    parser.add_argument(
        "--inprocess-duration", type=_positive, default=2.0, help="seconds per in-process point"
    )
    parser.add_argument("--only", default="", help="servers, comma-separated (default: all)")
    parser.add_argument("--models", default="mlp,cnn", help="models, comma-separated")
    parser.add_argument("--protocols", default="http,grpc", help="http, grpc or both")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument(
        "--perf-analyzer",
        choices=["auto", "off"],
        default="auto",
        help="also measure V2 servers with NVIDIA perf_analyzer when it is installed",
    )
    parser.add_argument("--pa-concurrency", default="16", help="perf_analyzer levels")
    parser.add_argument("--skip-peers", action="store_true", help="only ours and in-process")
    parser.add_argument(
        "--output", type=Path, default=BENCH_DIR / "RESULTS.md", help="where to write results"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=BENCH_DIR / ".work" / "run",
        help="emptied, then holds the generated repositories and server logs",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, write no file")
    args = parser.parse_args(argv)
    for option in ("concurrency", "pa_concurrency"):
        levels = _split(getattr(args, option))
        if not levels or not all(level.isdigit() and int(level) > 0 for level in levels):
            parser.error(f"--{option.replace('_', '-')} takes positive integers, e.g. 1,4,16")
    return args


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class _Job:
    """One measurement to make against a started server."""

    protocol: str  # "http" or "grpc"
    client: str  # "wrk", "grpc.aio" or "perf_analyzer"
    wire: str
    level: int
    payload: Payload


def _jobs(defn: ServerDef, model: BenchModel, args: argparse.Namespace) -> list[_Job]:
    sample = model.sample(1)
    protocols = [p for p in _split(args.protocols) if p == "http" or defn.grpc]
    jobs: list[_Job] = []
    for protocol in protocols:
        wire: str = defn.http_wire(model) if protocol == "http" else Wire.GRPC_RAW
        payload = build_payload(Wire(wire), model.name, sample)
        client = "wrk" if protocol == "http" else "grpc.aio"
        jobs += [_Job(protocol, client, wire, level, payload) for level in _levels(args)]
    if args.perf_analyzer_on and defn.v2_http:
        for protocol in protocols:
            wire = "pa-binary" if protocol == "http" else "pa-raw"
            payload = build_payload(
                Wire.V2_BINARY if protocol == "http" else Wire.GRPC_RAW, model.name, sample
            )
            levels = [int(c) for c in _split(args.pa_concurrency)]
            jobs += [_Job(protocol, "perf_analyzer", wire, level, payload) for level in levels]
    return jobs


def _levels(args: argparse.Namespace) -> list[int]:
    return [int(c) for c in _split(args.concurrency)]


def _measure(job: _Job, endpoint: Endpoint, model: str, args: argparse.Namespace) -> LoadResult:
    target = endpoint.grpc_target or ""
    if job.client == "wrk":
        return run_wrk(endpoint.http_base, job.payload, job.level, args.duration, args.warmup)
    if job.client == "grpc.aio":
        return run_grpc(target, job.payload, job.level, args.duration, args.warmup)
    url = endpoint.http_base.removeprefix("http://") if job.protocol == "http" else target
    return run_perf_analyzer(url, job.protocol, model, job.level, args.duration)


def _bench_server(
    defn: ServerDef,
    model: BenchModel,
    args: argparse.Namespace,
    workdir: Path,
    progress: Progress,
    task: TaskID,
) -> list[Row]:
    jobs = _jobs(defn, model, args)
    expected = make_session(model).run(None, {INPUT_NAME: model.sample(1)})[0]
    rows: list[Row] = []

    def record(job: _Job, result: LoadResult | None, error: str = "") -> None:
        row = Row(defn.name, defn.category, job.protocol, job.wire, model.name, job.level, result)
        rows.append(replace(row, error=error, client=job.client))
        progress.advance(task)

    try:
        with serve(defn, model, workdir / defn.name / model.name) as endpoint:
            # A fast wrong answer is no result: check each protocol once before measuring.
            failed: dict[str, str] = {}
            for job in jobs:
                if job.client != "perf_analyzer" and job.protocol not in failed:
                    try:
                        check_answer(
                            job.payload, expected, endpoint.http_base, endpoint.grpc_target
                        )
                        failed[job.protocol] = ""
                    except WrongAnswerError as exc:
                        failed[job.protocol] = f"answer check failed: {exc}"
            for job in jobs:
                if failed.get(job.protocol):
                    record(job, None, failed[job.protocol])
                    continue
                progress.update(
                    task,
                    description=f"{defn.name} {model.name} {job.protocol} {job.client} "
                    f"c{job.level}",
                )
                try:
                    record(job, _measure(job, endpoint, model.name, args))
                except LoadError as exc:
                    record(job, None, str(exc))
    except ServerStartError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "did not start"
        for job in jobs[len(rows) :]:
            record(job, None, f"server did not start: {first}")
    return rows


def _select(args: argparse.Namespace, wanted: set[str]) -> tuple[list[ServerDef], dict[str, str]]:
    """The servers to run, and what will not be measured with why; adjusts ``args``."""
    skipped: dict[str, str] = {}
    if "http" in _split(args.protocols) and find_wrk() is None:
        skipped["HTTP rows"] = "wrk is not installed (apt-get install wrk)"
        args.protocols = ",".join(p for p in _split(args.protocols) if p != "http")
    args.perf_analyzer_on = args.perf_analyzer == "auto" and pa_available()
    if args.perf_analyzer == "auto" and not args.perf_analyzer_on:
        skipped["perf_analyzer"] = "not installed: python -m benchmarks.perf_analyzer install"
    runnable: list[ServerDef] = []
    for defn in server_defs():
        if (wanted and defn.name not in wanted) or (args.skip_peers and defn.category != "ours"):
            continue
        why = defn.available()
        if why:
            skipped[defn.name] = why
        else:
            runnable.append(defn)
    return runnable, skipped


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
    args = _parse(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # a log file gets the full table
    started = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()[0]
    models = [m for m in all_models() if m.name in _split(args.models)]
    wanted = set(_split(args.only))
    unknown = (wanted - {d.name for d in server_defs()}) | (
        set(_split(args.models)) - {m.name for m in all_models()}
    )
    if unknown or not models:
        console.print(
            f"[red]error:[/red] unknown server or model: {', '.join(sorted(unknown)) or '-'}; "
            f"servers: {', '.join(d.name for d in server_defs())}; models: mlp, cnn"
        )
        return 2
    # Logs and generated repositories stay there for a look after the run.
    workdir: Path = args.workdir
    if not _reset_workdir(workdir):
        console.print(f"[red]error:[/red] {workdir} is not empty and not a benchmark workdir")
        return 2
    runnable, skipped = _select(args, wanted)
    with console.status("in-process ONNX Runtime (the limit)..."):
        inproc = run_inprocess(models, args.inprocess_duration)
    rows: list[Row] = []
    total = sum(len(_jobs(d, m, args)) for d in runnable for m in models)
    with (
        Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
        ) as progress,
    ):
        task = progress.add_task("servers", total=total)
        for model in models:
            for defn in runnable:
                if not _jobs(defn, model, args):
                    continue  # e.g. --protocols grpc for an HTTP-only peer
                progress.update(task, description=f"starting {defn.name} ({model.name})")
                rows += _bench_server(defn, model, args, workdir, progress, task)
    targets = check_targets(rows, inproc)
    for table in rich_tables(rows, inproc, targets):
        console.print(table)
    if not args.no_write:
        meta = {
            "Run": {
                "date (UTC)": started.strftime("%Y-%m-%d %H:%M"),
                "duration per row": f"{args.duration:g} s measured after {args.warmup:g} s warm-up",
                "command": "python -m benchmarks.run " + " ".join(argv),
                # Other work on the machine shows here; numbers from a busy machine are low.
                "load average (1 min) at start / end": f"{load_start:.2f} / "
                f"{os.getloadavg()[0]:.2f}",
            },
            "Machine": sysinfo.machine(),
            "Versions": sysinfo.versions(),
        }
        text = markdown(
            rows,
            inproc,
            targets,
            meta,
            method_notes(args.duration, args.warmup, DEFAULT_DURATION_S, skipped, models),
        )
        args.output.write_text(text, encoding="utf-8")
        console.print(f"wrote {args.output}")
    ours_failed = [r for r in rows if r.category == "ours" and r.result is None]
    return 1 if ours_failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
