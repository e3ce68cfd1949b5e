"""`amlpkg runs list/show/compare/best`: read tracked runs, in the workspace or on a server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from amlpkg.cli.output import console, print_json, print_table
from amlpkg.trainer.remote.backend import open_backend
from amlpkg.trainer.store.runs import RunRecord

app = typer.Typer(no_args_is_help=True)

# Shared by the trainer's commands: --home beats AMLPKG_HOME beats ./.amlpkg.
HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Workspace folder (default: $AMLPKG_HOME, else ./.amlpkg).",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
# --tracking-uri beats $AMLPKG_TRACKING_URI beats `amlpkg login`; --home picks the workspace.
TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="Team server URL (default: $AMLPKG_TRACKING_URI, else `amlpkg login`'s).",
    ),
]


def when(timestamp: float | None) -> str:
    """A Unix time as local ISO text (seconds), '-' for None."""
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


def _duration(run: RunRecord) -> str:
    if run.end_time is None:
        return "-"
    return f"{run.end_time - run.start_time:.1f}s"


def _metrics_text(values: dict[str, float], limit: int = 3) -> str:
    items = [f"{k}={v:.4g}" for k, v in list(values.items())[:limit]]
    more = len(values) - limit
    return ", ".join(items) + (f" (+{more})" if more > 0 else "")


@app.command("list")
def list_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    search: Annotated[
        str | None,
        typer.Option(
            help="Words (in the name or id) and comparisons, e.g."
            " 'metrics.acc > 0.9 params.lr = 0.01 tags.team = vision'."
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            help="start_time (default), end_time, duration, name, status, metrics.KEY, params.KEY."
        ),
    ] = None,
    ascending: Annotated[bool, typer.Option("--asc", help="Lowest or oldest first.")] = False,
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, filtered and sorted by the store (or the server)."""
    order = "asc" if ascending else None
    with open_backend(home, tracking_uri) as backend:
        runs = backend.list_runs(experiment, status, limit, search=search, sort=sort, order=order)
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    table = Table(title=f"runs ({len(runs)})")
    for column in ("run", "experiment", "name", "status", "started", "duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("metrics")
    for r in runs:
        table.add_row(
            r.id[:8],
            r.experiment,
            r.name or "",
            r.status,
            when(r.start_time),
            _duration(r),
            _metrics_text(r.metrics, limit=2),
        )
    print_table(table)


@app.command("show")
def show_command(
    run: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one run: provenance, params, final metrics, tags and artifacts."""
    with open_backend(home, tracking_uri) as backend:
        record = backend.get_run(run)
        artifacts = backend.list_artifacts(record.id)
    if as_json:
        print_json({**record.to_dict(), "artifacts": artifacts})
        return
    info = Table(show_header=False, title=f"run {record.id}")
    info.add_column("field", style="bold")
    info.add_column("value")
    for key, value in (
        ("experiment", record.experiment),
        ("name", record.name),
        ("status", record.status),
        ("exit code", record.exit_code),
        ("started", when(record.start_time)),
        ("ended", when(record.end_time)),
        ("command", record.info.command),
        ("git commit", record.info.git_commit),
        ("git dirty", record.info.git_dirty),
        ("python", record.info.python_version),
        ("host", record.info.host),
        ("user", record.info.user),
    ):
        info.add_row(key, "-" if value is None else str(value))
    print_table(info)
    for title, values in (("params", record.params), ("metrics", record.metrics)):
        table = Table(title=title)
        table.add_column("key")
        table.add_column("value")
        for name, item in values.items():
            table.add_row(name, f"{item:.6g}" if isinstance(item, float) else str(item))
        print_table(table)
    table = Table(title="artifacts")
    for column in ("path", "size", "sha256"):
        table.add_column(column)
    for artifact in artifacts:
        table.add_row(artifact["path"], str(artifact["size"]), artifact["sha256"][:16])
    print_table(table)


@app.command("compare")
def compare_command(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """Params and final metrics of several runs side by side."""
    with open_backend(home, tracking_uri) as backend:
        records = [backend.get_run(r) for r in runs]
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = Table(title="compare")
    table.add_column("", no_wrap=True)
    for record in records:
        table.add_column(record.id[:12])
    table.add_row("status", *[r.status for r in records], style="dim")
    for section in ("params", "metrics"):
        keys = sorted({k for r in records for k in getattr(r, section)})
        for key in keys:
            cells = []
            for r in records:
                value = getattr(r, section).get(key)
                cells.append(
                    "-" if value is None else f"{value:.6g}" if section == "metrics" else value
                )
            differs = len({c for c in cells}) > 1
            table.add_row(f"{section[:-1]}.{key}", *cells, style="bold" if differs else None)
    print_table(table)


@app.command("best")
def best_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric to rank by.")],
    maximize: Annotated[
        bool, typer.Option("--max/--min", help="Highest (default) or lowest final value.")
    ] = True,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    home: HomeOption = None,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """The run with the best final value of a metric."""
    with open_backend(home, tracking_uri) as backend:
        record = backend.best_run(metric, maximize, experiment)
    if as_json:
        print_json(record.to_dict())
        return
    console.print(
        f"best run by {'max' if maximize else 'min'} {metric}: [bold]{record.id}[/]"
        f" ({metric}={record.metrics[metric]:.6g}, experiment {record.experiment})"
    )
