"""A large workspace through the team server: API latency and page loads in Chromium.

``python -m benchmarks.control_plane_scale [--runs N --big-points N --repeat N
--backends sqlite,postgres --no-browser --write]`` seeds a workspace in bulk (see
:mod:`benchmarks.control_plane_seed`: 10,000 runs and a run of 1,000,000 points, over
1.2M metric values in all), starts a real ``amlpkg server`` process on it and measures

- API latency, p50 and p95 over ``--repeat`` calls after a warm-up: the first page of
  runs, a page deep in the list, runs sorted by a metric's final value, a filtered search
  (metric and param comparisons, a tag), one run, the big run, and the big run's chart
  series downsampled by the server;
- page loads in headless Chromium (Debian's, through Playwright), each in a fresh tab
  signed in with a token: the runs page until its first rows show, and the big run's
  page until its metric chart is drawn.

Goal: every one under 1 s. It runs on the embedded SQLite store, and on PostgreSQL when
``.ci/services.sh`` has written its env file (a new database, dropped afterwards).
``--write`` puts the table into ``RESULTS.md`` between markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.control_plane_seed import Seeded, Shape, seed
from benchmarks.report import md_table, put_section
from benchmarks.sysinfo import machine

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "control-plane-scale"
GOAL_MS = 1000.0
CHROMIUM = Path("/usr/bin/chromium")
CLI = Path(sys.executable).parent / "amlpkg"
SERVICES = Path(os.environ.get("AMLPKG_SERVICES_DIR", "/tmp/amlpkg-services"))
COLUMNS = ["store", "measure", "request / page", "n", "p50 ms", "p95 ms", "goal", "verdict"]


@dataclass
class Measure:
    """Milliseconds of one request or page, repeated."""

    store: str
    name: str
    what: str
    samples: list[float]

    def quantile(self, q: float) -> float:
        """The nearest-rank quantile ``q`` of the samples."""
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def cells(self) -> list[str]:
        """One table row."""
        p50, p95 = self.quantile(0.5), self.quantile(0.95)
        verdict = "MET" if p95 < GOAL_MS else "NOT MET"
        return [self.store, self.name, self.what, str(len(self.samples)), f"{p50:.0f}",
                f"{p95:.0f}", f"< {GOAL_MS:.0f} ms", verdict]  # fmt: skip


def api_requests(seeded: Seeded) -> list[tuple[str, str, str]]:
    """``(name, path, what is shown)`` of each measured API request."""
    search = "metrics.acc > 0.5 params.optimizer = adam"
    big = f"/api/v1/runs/{seeded.big_run}"
    return [
        ("runs page", "/api/v1/runs?limit=50", "/runs?limit=50"),
        ("runs page 101", "/api/v1/runs?limit=50&offset=5000", "/runs?limit=50&offset=5000"),
        ("runs by metric", "/api/v1/runs?limit=50&sort=metrics.acc", "/runs?sort=metrics.acc"),
        ("filtered search", f"/api/v1/runs?limit=50&q={quote(search)}&tag=team%3Dvision",
         f"/runs?q={search}&tag=team=vision"),
        ("run detail", f"/api/v1/runs/{seeded.sample_run}", "/runs/RUN"),
        ("big run detail", big, "/runs/BIG"),
        ("big run series", f"{big}/metrics/loss?max_points=1000&downsample=minmax",
         "/runs/BIG/metrics/loss?max_points=1000&downsample=minmax"),
    ]  # fmt: skip


def measure_api(store: str, url: str, token: str, seeded: Seeded, repeat: int) -> list[Measure]:
    """Each request ``repeat`` times after two warm-up calls."""
    found = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for name, path, shown in api_requests(seeded):
            samples = []
            for _ in range(repeat + 2):
                started = time.perf_counter()
                client.get(path).raise_for_status()
                samples.append((time.perf_counter() - started) * 1000)
            if name == "big run series":  # kept by the server after the first: show that one
                found.append(Measure(store, f"{name}, first call", f"GET {shown}", samples[:1]))
            found.append(Measure(store, name, f"GET {shown}", samples[2:]))
    return found


def measure_pages(store: str, url: str, token: str, seeded: Seeded, repeat: int) -> list[Measure]:
    """Page loads in fresh Chromium tabs, from navigation to what the page is for."""
    from playwright.sync_api import sync_playwright

    pages = [
        ("runs page load", "/ui/runs", "#runs-table tbody tr", "/ui/runs to the first rows"),
        ("big run page load", f"/ui/runs/{seeded.big_run}",
         "figure.chart[data-title='loss'] canvas", "/ui/runs/BIG to the chart drawn"),
    ]  # fmt: skip
    found = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            for name, path, selector, what in pages:
                samples = []
                for i in range(repeat + 1):
                    context = browser.new_context(viewport={"width": 1280, "height": 860})
                    page = context.new_page()
                    started = time.perf_counter()
                    page.goto(f"{url}{path}#token={token}")
                    page.wait_for_selector(selector, timeout=60_000)
                    if i >= 1:
                        samples.append((time.perf_counter() - started) * 1000)
                    context.close()
                found.append(Measure(store, name, what, samples))
        finally:
            browser.close()
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(home: Path, store: str | None, log: Path) -> Iterator[str]:
    """``amlpkg server`` on a free port over the workspace; yields its URL."""
    port = _free_port()
    env = {**os.environ, "AMLPKG_HOME": str(home)}
    env.pop("AMLPKG_STORE", None)
    command = [str(CLI), "server", "--port", str(port)]
    if store:
        command[2:2] = ["--store", store]
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def postgres_admin_url() -> str | None:
    """The test PostgreSQL URL from ``.ci/services.sh``'s env files (None without them)."""
    found = os.environ.get("AMLPKG_TEST_DATABASE_URL")
    for path in sorted(SERVICES.glob("env.*")) if SERVICES.is_dir() else []:
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "AMLPKG_TEST_DATABASE_URL" and not found:
                found = value.strip()
    return found


@contextmanager
def postgres_database(admin: str) -> Iterator[str]:
    """A new database for the benchmark, dropped at the end."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"amlpkg_bench_{uuid.uuid4().hex[:10]}"
    plain = admin.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        for attempt in range(20):  # an autovacuum worker may still be in it for a moment
            try:
                with psycopg.connect(plain, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                break
            except psycopg.errors.InsufficientPrivilege:
                if attempt == 19:
                    raise
                time.sleep(0.5)


def bench_store(
    label: str, store: str | None, shape: Shape, args: argparse.Namespace, console: Console
) -> tuple[Seeded, list[Measure]]:
    """Seed a workspace on one store, serve it, and measure."""
    from amlpkg.server import tokens
    from amlpkg.server.roles import Role
    from amlpkg.store.workspace import open_workspace

    with tempfile.TemporaryDirectory(prefix="amlpkg-scale-") as tmp:
        home = Path(tmp) / "ws"
        doing = f"{label}: seeding {shape.runs:,} runs and {shape.big_points:,}+ metric points..."
        with console.status(doing), open_workspace(home, store=store) as ws:
            seeded = seed(ws, shape)
            token, _ = tokens.create_token(
                ws, role=Role("reader"), name="bench", created_by="bench", expires=None
            )
        console.print(f"{label}: seeded {seeded.runs:,} runs, {seeded.metric_points:,} metric "
                      f"points in {seeded.seconds:.1f} s")  # fmt: skip
        with running_server(home, store, Path(tmp) / "server.log") as url:
            with console.status(f"{label}: API latency ({args.repeat} calls each)..."):
                measures = measure_api(label, url, token, seeded, args.repeat)
            if not args.no_browser:
                with console.status(f"{label}: page loads in Chromium..."):
                    measures += measure_pages(label, url, token, seeded, args.page_repeat)
    return seeded, measures


def versions(postgres: str | None) -> dict[str, str]:
    """Versions of what the numbers depend on."""
    found = {}
    for dist in ("amlpkg", "fastapi", "uvicorn", "sqlalchemy", "psycopg", "playwright"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found["SQLite"] = sqlite3.sqlite_version
    if postgres:
        import psycopg

        with psycopg.connect(postgres.replace("+psycopg", "")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            found["PostgreSQL"] = str(row[0]) if row else "?"
    if CHROMIUM.exists():
        proc = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip
        found["Chromium"] = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "?"
    return found


def markdown(
    measures: list[Measure], seeded: dict[str, Seeded], meta: dict[str, str], skipped: list[str]
) -> str:
    """The RESULTS.md section."""
    parts = ["## Control plane at scale (10,000 runs, 1,000,000-point run)", ""]
    parts += [f"- **{k}**: {v}" for k, v in meta.items()]
    for label, s in seeded.items():
        parts.append(f"- **seed ({label})**: {s.runs:,} runs, {s.metric_points:,} metric points "
                     f"(BIG: one run of {s.big_points:,}), {s.seconds:.1f} s")  # fmt: skip
    parts += [f"- **skipped**: {why}" for why in skipped]
    parts += ["", md_table(COLUMNS, [m.cells() for m in measures]), ""]
    parts.append(
        "API: one client, sequential calls after 2 warm-up calls, wall time of the whole HTTP"
        " exchange (JSON included). Pages: a fresh Chromium tab each time (after one warm-up"
        " load), from navigation start to the rows or the drawn chart, sign-in with a token"
        " included. The series is the server's min/max downsampling to at most 1,000 points;"
        " the server keeps the last thinned series while the metric's count and step range"
        " stay the same, so only its first call (its own row) pays for reading the million"
        " values. Verdicts are on p95, where a busy machine shows first: the load average"
        " above is of the whole machine (2 cores shared with other work), not of this run."
    )
    return "\n".join(parts)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options; exits with 2 on a bad one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control_plane_scale",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    add = parser.add_argument
    add("--runs", type=int, default=10_000, help="runs to seed")
    add("--big-points", type=int, default=1_000_000, help="metric points of the big run")
    add("--repeat", type=int, default=20, help="calls per API request")
    add("--page-repeat", type=int, default=20, help="loads per page")
    add("--backends", default="sqlite,postgres", help="sqlite, postgres (when available)")
    add("--no-browser", action="store_true", help="API latency only")
    add("--write", action="store_true", help=f"write the section into {RESULTS.name}")
    args = parser.parse_args(argv)
    if min(args.runs, args.big_points, args.repeat, args.page_repeat) < 1:
        parser.error("--runs, --big-points, --repeat and --page-repeat must be >= 1")
    if not set(args.backends.split(",")) <= {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and/or postgres")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 1 when a goal is not met."""
    args = parse(argv)
    console = Console() if Console().is_terminal else Console(width=160)
    started = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()[0]
    skipped: list[str] = []
    if not args.no_browser and not CHROMIUM.exists():
        args.no_browser = True
        skipped.append("page loads: no /usr/bin/chromium (apt-get install chromium)")
    shape = Shape(runs=args.runs, big_points=args.big_points)
    measures: list[Measure] = []
    seeded: dict[str, Seeded] = {}
    admin = postgres_admin_url() if "postgres" in args.backends else None
    if "postgres" in args.backends and admin is None:
        skipped.append("PostgreSQL: no env file from .ci/services.sh")
    if "sqlite" in args.backends:
        seeded["SQLite"], found = bench_store("SQLite", None, shape, args, console)
        measures += found
    if admin is not None:
        with postgres_database(admin) as url:
            seeded["PostgreSQL"], found = bench_store("PostgreSQL", url, shape, args, console)
            measures += found
    table = Table(title="Control plane at scale (goal: each under 1 s)")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("n", "p50 ms", "p95 ms") else "left")
    for m in measures:
        cells = m.cells()
        style = "green" if cells[-1] == "MET" else "red"
        table.add_row(*cells[:-1], f"[{style}]{cells[-1]}[/{style}]")
    console.print(table)
    if args.write:
        command = "python -m benchmarks.control_plane_scale " + " ".join(argv or sys.argv[1:])
        meta = {"date (UTC)": started.strftime("%Y-%m-%d %H:%M"), "command": command,
                # Other work on the machine shows here: numbers from a busy one are slow.
                "load average (1 min) at start / end": f"{load_start:.2f} / "
                f"{os.getloadavg()[0]:.2f}",
                **{f"machine: {k}": v for k, v in machine().items()},
                **{f"version: {k}": v for k, v in versions(admin).items()},
                "platform": platform.platform()}  # fmt: skip
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        RESULTS.write_text(put_section(text, SECTION, markdown(measures, seeded, meta, skipped)))
        console.print(f"wrote section {SECTION!r} of {RESULTS}")
    return 0 if all(m.cells()[-1] == "MET" for m in measures) else 1


if __name__ == "__main__":
    sys.exit(main())
