"""Our team server beside MLflow's tracking server: same PostgreSQL, same machine, one run.

``python -m benchmarks.control_plane_mlflow [--quick] [--only amlpkg] [--no-write]``
starts ``mlflow server --workers 1`` (from its own venv, ``.bench-venvs/mlflow``, made
on first use) and ``amlpkg server`` (one uvicorn process), each on a fresh database of
the same PostgreSQL cluster with a local artifact folder, and measures side by side:

1. metric points stored per second while ``--clients`` processes log at once: each
   project's per-point client as its users call it (``amlpkg.log_metric``; MLflow's
   ``log_metric`` with ``synchronous=False`` and, fewer points, its synchronous default),
   and the raw REST batch endpoint of each through one shared httpx client; the points
   in each database are counted afterwards, so a lost point shows;
2. run-search latency p50/p99 with ``--runs`` runs in the experiment (written in bulk
   into each database, not timed): the first page of 100 runs, filtered and sorted;
3. model-version registration latency p50/p99, one call at a time; the search and
   registration calls of the two sides take turns.

Prints a Rich table with the ratios amlpkg/MLflow and writes the
``control-plane-mlflow`` section of ``RESULTS.md``. Default: 3.5 minutes on 2 cores (9
with other work at load average 20-50); ``--quick``: a smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from benchmarks import control_plane_measures as cpm
from benchmarks import control_plane_report as cpr
from benchmarks import control_plane_servers as srv
from benchmarks.report import put_section
from benchmarks.sysinfo import machine

BENCH_DIR = Path(__file__).resolve().parent
SECTION = "control-plane-mlflow"
TITLE = "Team server beside MLflow's tracking server (same PostgreSQL, same machine)"
QUICK = cpm.Plan(
    clients=4,
    script_points=200,
    sync_points=20,
    rest_points=2000,
    runs=200,
    queries=20,
    registrations=10,
)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; exits 2 on a bad one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control_plane_mlflow")
    add = parser.add_argument
    add("--quick", action="store_true", help="a smoke run (small counts)")
    add("--only", choices=["amlpkg", "mlflow"], help="one side only (no ratios)")
    add("--clients", type=int, help="concurrent logging processes (default 16)")
    add("--runs", type=int, help="runs in the searched experiment (default 10,000)")
    add("--output", type=Path, default=BENCH_DIR / "RESULTS.md", help="the results file")
    add("--workdir", type=Path, default=BENCH_DIR / ".work" / "control-plane")
    add("--no-write", action="store_true", help="print only, write no file")
    args = parser.parse_args(argv)
    for name in ("clients", "runs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1")
    return args


def plan_from(args: argparse.Namespace) -> cpm.Plan:
    """The plan the options ask for."""
    plan = QUICK if args.quick else cpm.Plan()
    if args.clients:
        plan = replace(plan, clients=args.clients)
    if args.runs:
        plan = replace(plan, runs=args.runs)
    return plan


def rows_from(
    logs: dict[tuple[str, str], tuple[cpr.LogResult, float]],
    search: dict[str, list[float]],
    register: dict[str, list[float]],
    plan: cpm.Plan,
) -> list[cpr.Row]:
    """The table: every measure with both sides (None where a side did not run)."""

    def rate(side: str, variant: str) -> float | None:
        found = logs.get((side, variant))
        return found[0].per_second if found else None

    def cpu(side: str, variant: str) -> float | None:
        found = logs.get((side, variant))
        return found[1] if found else None

    def pct(samples: dict[str, list[float]], side: str, q: float) -> float | None:
        return cpr.percentile(samples[side], q) if side in samples else None

    clients = f"{plan.clients} processes"
    rest = f"{clients}, {plan.batch} points per request"
    page = f"{plan.runs:,} runs, first page of {cpm.SEARCH_PAGE}"
    rows = [
        cpr.Row(
            "points/s, per-point client: amlpkg.log_metric vs mlflow.log_metric(synchronous=False)",
            "points/s",
            rate("amlpkg", "script"),
            rate("mlflow", "async"),
            ">=1",
            clients,
        ),
        cpr.Row(
            "points/s, raw REST batch endpoint",
            "points/s",
            rate("amlpkg", "rest"),
            rate("mlflow", "rest"),
            ">=1",
            rest,
        ),
        cpr.Row(
            "points/s, amlpkg.log_metric vs MLflow's default synchronous mlflow.log_metric",
            "points/s",
            rate("amlpkg", "script"),
            rate("mlflow", "sync"),
            note=f"{plan.sync_points} points per MLflow client",
        ),
        cpr.Row(
            "server CPU per point stored, per-point client",
            "CPU-ms",
            cpu("amlpkg", "script"),
            cpu("mlflow", "async"),
        ),
        cpr.Row(
            "server CPU per point stored, REST batch",
            "CPU-ms",
            cpu("amlpkg", "rest"),
            cpu("mlflow", "rest"),
        ),
    ]
    for label, samples, note in (
        ("run search", search, page),
        ("model-version registration", register, "sequential"),
    ):
        rows.append(
            cpr.Row(f"{label} p50", "ms", pct(samples, "amlpkg", 50), pct(samples, "mlflow", 50))
        )
        rows.append(
            cpr.Row(
                f"{label} p99",
                "ms",
                pct(samples, "amlpkg", 99),
                pct(samples, "mlflow", 99),
                "<1",
                note,
            )
        )
    return rows


def run_measures(ctx: cpm.Context, console: Console) -> tuple[list[cpr.Row], list[str]]:
    """Every measure (logging: MLflow then amlpkg; search and registration: in turns)."""
    logs: dict[tuple[str, str], tuple[cpr.LogResult, float]] = {}
    for side, variant, argv in cpm.variants(ctx):
        with console.status(f"logging: {side} {variant}, {ctx.plan.clients} clients..."):
            found = cpm.log_once(ctx, side, variant, argv)
        if found is None:
            console.print(f"  [red]logging {side} {variant} failed:[/red] {ctx.failed}")
            continue
        logs[side, variant] = found
        result = found[0]
        console.print(
            f"  logging {side} {variant}: {result.stored:,}/{result.sent:,} points stored in"
            f" {result.seconds:.2f} s = {result.per_second:,.0f}/s"
        )
    asked: list[str] = []
    with contextlib.ExitStack() as stack:
        http = {side: stack.enter_context(cpm.client(s)) for side, s in ctx.servers.items()}
        searches: dict[str, Callable[[], None]] = {}
        for side in sorted(ctx.servers, reverse=True):  # mlflow first
            with console.status(f"seeding {ctx.plan.runs:,} runs on {side}..."):
                searches[side], question = cpm.search_call(ctx, side, http[side])
            asked.append(f"{side}: `{question}`")
        with console.status("search: the sides in turns..."):
            search = cpm.timed_turns(searches, ctx.plan.queries)
        registers = {side: cpm.register_call(ctx, side, http[side]) for side in ctx.servers}
        with console.status("registration: the sides in turns..."):
            register = cpm.timed_turns(registers, ctx.plan.registrations)
    for side in sorted(ctx.servers, reverse=True):
        console.print(
            f"  {side}: search p50 {cpr.percentile(search[side], 50):.1f} ms,"
            f" registration p50 {cpr.percentile(register[side], 50):.1f} ms"
        )
    return rows_from(logs, search, register, ctx.plan), asked


def notes(ctx: cpm.Context, asked: list[str]) -> list[str]:
    """What the numbers mean and how they were made."""
    plan = ctx.plan
    found = [server.note for server in ctx.servers.values()]
    found += [
        "Both servers run at once on 127.0.0.1 and share the cores with the clients and"
        " PostgreSQL. Logging variants run one after another; search and registration"
        " calls alternate between the sides call by call (order flipped every round), so"
        " load from other work on the machine weighs on both alike. Artifacts: a local"
        " folder on each side.",
        f"Logging: {plan.clients} client processes per variant start, import and make their"
        " run, then go at once; points/s = points found in the database afterwards / (last"
        f" end - first start). Per-point clients log {plan.script_points} points each;"
        f" REST clients {plan.rest_points} each. amlpkg.log_metric spools to a file and a"
        " thread sends batches; end_run() returns once all are stored. MLflow's"
        " synchronous=False queues values for a pool of sender threads (here about one"
        " request per point); flush_async_logging() waits for them.",
        "Search: " + "; ".join(asked) + f"; {plan.queries} queries per side after 3 warm-ups."
        " Both read each run's final metric values from a table kept on write"
        " (latest_metrics on each side); ours answers the page, its values and the total"
        " count of matching runs in two statements.",
        f"Registration: {plan.registrations} versions of one model, one at a time (3 warm-ups)."
        " amlpkg registers runs:/RUN/model.onnx and reads and validates that ONNX file"
        " (signature, opset) each time, and writes the version, its lineage edge and the"
        " audit row in one transaction (after the token's lookup); MLflow records the"
        " source URI it is given (runs:/RUN/model) without reading it, and no audit row.",
    ]
    if ctx.seed_seconds:
        found.append(
            "Seeding (not measured): "
            + ", ".join(f"{s} {t:.0f} s" for s, t in sorted(ctx.seed_seconds.items()))
            + f" for {plan.runs:,} runs, straight into each database (COPY, then ANALYZE)."
        )
    pages = ctx.first_page
    if len(pages) == 2:
        same = pages["amlpkg"] == pages["mlflow"]
        found.append(
            f"Both searches answered the same {len(pages['amlpkg'])} runs in the same order: "
            + ("yes." if same else "NO (the data sets or the sorting differ).")
        )
    found += [f"FAILED: {name}: {why}" for name, why in ctx.failed.items()]
    lost = ", ".join(f"{k}: {v}" for k, v in ctx.lost.items()) or "none"
    found.append(f"Points lost (sent but not in the database): {lost}.")
    return found


@contextlib.contextmanager
def servers(
    args: argparse.Namespace, workdir: Path, python: Path | None
) -> Iterator[dict[str, srv.Server]]:
    """Both servers (or the one ``--only`` names), each on a fresh database, dropped after."""
    admin = srv.database_url()
    names = {side: f"amlpkg_bench_cp_{side}_{os.getpid()}" for side in ("amlpkg", "mlflow")}
    with contextlib.ExitStack() as stack:
        for name in names.values():
            stack.callback(srv.drop_database, admin, name)  # after the servers stop
        started: dict[str, srv.Server] = {}
        if args.only != "amlpkg" and python is not None:
            db = srv.fresh_database(admin, names["mlflow"])
            started["mlflow"] = stack.enter_context(srv.mlflow_server(python, db, workdir))
        if args.only != "mlflow":
            db = srv.fresh_database(admin, names["amlpkg"])
            started["amlpkg"] = stack.enter_context(srv.amlpkg_server(db, workdir))
        yield started


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; 1 when a point was lost or our side failed, 2 when a need is missing."""
    args = parse(argv)
    console = Console() if Console().is_terminal else Console(width=180)
    plan = plan_from(args)
    started = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()[0]
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        python = None if args.only == "amlpkg" else srv.mlflow_python()
        console.print("starting the servers (MLflow makes its tables first)...")
        with servers(args, workdir, python) as running:
            ctx = cpm.Context(plan, workdir, python, running)
            rows, asked = run_measures(ctx, console)
    except srv.SetupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(cpr.rich_table(rows, TITLE))
    text_notes = notes(ctx, asked)
    for note in text_notes:
        console.print(f"- {note}")
    if not args.no_write:
        meta = {
            "Run": {
                "date (UTC)": started.strftime("%Y-%m-%d %H:%M"),
                "command": "python -m benchmarks.control_plane_mlflow "
                + " ".join(argv if argv is not None else []),
                "load average (1 min) at start / end": f"{load_start:.2f} / "
                f"{os.getloadavg()[0]:.2f}",
            },
            "Machine": machine(),
            "Versions": {
                "amlpkg": _version("amlpkg"),
                "MLflow": srv.mlflow_version(python) if python else "not run",
                "PostgreSQL": srv.postgres_version(srv.database_url()),
                "Python": platform.python_version(),
            },
        }
        body = cpr.section(rows, meta, text_notes, TITLE)
        old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        args.output.write_text(put_section(old, SECTION, body), encoding="utf-8")
        console.print(f"wrote the {SECTION} section of {args.output}")
    return 1 if ctx.lost or any(k.startswith("amlpkg") for k in ctx.failed) else 0


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
