"""Experiments and runs: create, log (batched), end, and read them back."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from amlpkg.server import catalog, pages
from amlpkg.server.bodies import (
    ExperimentIn,
    ExperimentOut,
    LogBatchIn,
    LogBatchOut,
    MetricHistoryOut,
    MetricPoint,
    RunEndIn,
    RunIn,
    RunOut,
)
from amlpkg.server.deps import API, READ, WRITE, Caller, WorkspaceDep
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs
from amlpkg.trainer.store.run_filter import MAX_SEARCH_CHARS, check_text
from amlpkg.trainer.store.run_search import MAX_OFFSET, MAX_PAGE, count_runs
from amlpkg.trainer.store.runs import RunInfo
from amlpkg.trainer.store.series import downsampled

router = APIRouter(prefix=API, tags=["runs"], dependencies=READ)
RunRef = Annotated[str, "a run id or a unique prefix of at least 4 hex characters"]


@router.get("/experiments", response_model=list[ExperimentOut])
def list_experiments(ws: WorkspaceDep) -> list[dict[str, object]]:
    """Every experiment with its number of runs."""
    return catalog.list_experiments(ws)


@router.post("/experiments", response_model=ExperimentOut, status_code=201, dependencies=WRITE)
def create_experiment(body: ExperimentIn, ws: WorkspaceDep) -> dict[str, object]:
    """Make an empty experiment."""
    return catalog.create_experiment(ws, body.name)


@router.get("/runs", response_model=list[RunOut], responses=pages.PAGE_HEADERS)
def list_runs(  # noqa: PLR0917 - FastAPI maps parameters to query fields
    ws: WorkspaceDep,
    request: Request,
    response: Response,
    experiment: Annotated[str | None, Query(max_length=250)] = None,
    status: Annotated[str | None, Query(pattern="^(running|completed|failed|killed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=pages.OFFSET)] = 0,
    q: Annotated[str | None, Query(max_length=MAX_SEARCH_CHARS, description=pages.SEARCH)] = None,
    tag: Annotated[list[pages.TagFilter] | None, Query(description=pages.TAG)] = None,
    sort: Annotated[str, Query(max_length=260, description=pages.SORT)] = "start_time",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> list[dict[str, object]]:
    """One page of runs (newest first unless sorted otherwise), filtered and sorted here.

    ``X-Total-Count`` says how many runs match; ``Link`` gives the next and previous pages.
    """
    query = pages.run_query(experiment, status, q, tag or [], sort, order, limit, offset)
    found, total = queries.search_page(ws, query)
    if total is None:  # no row said it: an empty first page, or a page past the end
        total = 0 if offset == 0 else count_runs(ws, query)
    pages.set_headers(response, request, total, limit, offset)
    return [r.to_dict() for r in found]


@router.post("/runs", response_model=RunOut, status_code=201, dependencies=WRITE)
def create_run(
    body: RunIn, ws: WorkspaceDep, caller: Caller, request: Request
) -> dict[str, object]:
    """Start a run (status ``running``); the token's name is recorded as its user."""
    info = RunInfo(
        command=body.command,
        git_commit=body.git_commit,
        git_dirty=body.git_dirty,
        python_version=body.python_version,
        host=body.host,
        user=caller.name,
    )
    run_id = store_runs.create_run(ws, body.experiment, body.name, info)
    if body.tags:
        store_runs.set_tags(ws, run_id, body.tags)
    request.state.audit_target = run_id
    return queries.get_run(ws, run_id).to_dict()


@router.get("/runs/{run}", response_model=RunOut)
def get_run(run: RunRef, ws: WorkspaceDep) -> dict[str, object]:
    """One run with its params, final metric values and tags."""
    return queries.get_run(ws, run).to_dict()


@router.post("/runs/{run}/log-batch", response_model=LogBatchOut, dependencies=WRITE)
def log_batch(run: RunRef, body: LogBatchIn, ws: WorkspaceDep) -> LogBatchOut:
    """Log params, metrics and tags in one call (each kind in one transaction)."""
    run_id = queries.resolve_run_id(ws, run)
    if body.params:
        store_runs.log_params(ws, run_id, body.params)
    if body.metrics:
        points = [(m.key, m.value, m.step) for m in body.metrics]
        store_runs.log_metric_points(ws, run_id, points)
    if body.tags:
        store_runs.set_tags(ws, run_id, body.tags)
    return LogBatchOut(params=len(body.params), metrics=len(body.metrics), tags=len(body.tags))


@router.post("/runs/{run}/end", response_model=RunOut, dependencies=WRITE)
def end_run(run: RunRef, body: RunEndIn, ws: WorkspaceDep) -> dict[str, object]:
    """End a run with its final status."""
    run_id = queries.resolve_run_id(ws, run)
    store_runs.finish_run(ws, run_id, body.status, body.exit_code)
    return queries.get_run(ws, run_id).to_dict()


@router.get("/runs/{run}/metrics/{key:path}", response_model=MetricHistoryOut)
def metric_history(
    run: RunRef,
    key: Annotated[str, "metric key"],
    ws: WorkspaceDep,
    max_points: Annotated[
        int | None, Query(ge=2, le=1_000_000, description="at most this many points")
    ] = None,
    downsample: Annotated[
        Literal["even", "minmax"],
        Query(
            description="""even: every n-th point;
        minmax: each bucket of steps' lowest and highest value (spikes stay visible)"""
        ),
    ] = "even",
) -> MetricHistoryOut:
    """Every value of one metric, with its step and time, in step order.

    With ``max_points`` a long history is thinned so a chart of a million-step run stays
    light: ``even`` keeps evenly spaced points (the first and the last among them);
    ``minmax`` is computed in the database and keeps each bucket's extremes, the fast
    choice for charts.
    """
    run_id = queries.resolve_run_id(ws, run)
    check_text("metric key", key)
    if max_points is not None and downsample == "minmax":
        series = downsampled(ws, run_id, key, max_points)
        history, logged = series.points, series.logged
    else:
        history = store_runs.metric_history(ws, run_id, key)
        logged = len(history)
        if max_points is not None and len(history) > max_points:
            last = len(history) - 1
            history = [history[round(i * last / (max_points - 1))] for i in range(max_points)]
    points = [MetricPoint(step=s, value=v, timestamp=t) for s, v, t in history]
    return MetricHistoryOut(run_id=run_id, key=key, points=points, logged=logged)
