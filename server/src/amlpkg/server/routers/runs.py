"""Experiments and runs: create, log (batched), end, and read them back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from amlpkg.server import catalog
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
from amlpkg.trainer.store.runs import RunInfo

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


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    ws: WorkspaceDep,
    experiment: Annotated[str | None, Query(max_length=250)] = None,
    status: Annotated[str | None, Query(pattern="^(running|completed|failed|killed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, object]]:
    """Runs, newest first, optionally of one experiment and one status."""
    return [r.to_dict() for r in queries.list_runs(ws, experiment, status, limit)]


@router.post("/runs", response_model=RunOut, status_code=201, dependencies=WRITE)
def create_run(
    body: RunIn, ws: WorkspaceDep, caller: Caller, request: Request
) -> dict[str, object]:
    """Start a run (status ``running``); the token's name is recorded as its user."""
    run_id = store_runs.create_run(ws, body.experiment, body.name, RunInfo(user=caller.name))
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
    # The store takes one step per call: log runs of same-step values together, in order.
    chunk: dict[str, float] = {}
    step: int | None = None
    for metric in body.metrics:
        if chunk and (metric.step != step or metric.key in chunk):
            store_runs.log_metrics(ws, run_id, chunk, step)
            chunk = {}
        step = metric.step
        chunk[metric.key] = metric.value
    if chunk:
        store_runs.log_metrics(ws, run_id, chunk, step)
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
        int | None, Query(ge=2, le=1_000_000, description="evenly thinned to this many")
    ] = None,
) -> MetricHistoryOut:
    """Every value of one metric, with its step and time, in step order.

    With ``max_points`` a long history is thinned to evenly spaced points, the first and the
    last kept, so a chart of a million-step run stays light.
    """
    run_id = queries.resolve_run_id(ws, run)
    history = store_runs.metric_history(ws, run_id, key)
    if max_points is not None and len(history) > max_points:
        last = len(history) - 1
        history = [history[round(i * last / (max_points - 1))] for i in range(max_points)]
    points = [MetricPoint(step=s, value=v, timestamp=t) for s, v, t in history]
    return MetricHistoryOut(run_id=run_id, key=key, points=points)
