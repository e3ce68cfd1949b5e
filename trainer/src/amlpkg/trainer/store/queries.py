"""Reading runs back: one run, a filtered, sorted page of runs, the best by a metric."""

from __future__ import annotations

from typing import Any

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.db import Database, Record
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.store.run_filter import Comparison, Sort, parse_search, parse_sort
from amlpkg.trainer.store.run_search import TOTAL, RunQuery, check_page, page_sql
from amlpkg.trainer.store.runs import RunInfo, RunRecord

_CHUNK = 500  # run ids per IN list
_SELECT = (
    "SELECT r.*, e.name AS experiment FROM runs r JOIN experiments e ON e.id = r.experiment_id"
)
# The params, tags and final metric values (kept on write, see run_search) of some runs,
# in one statement: a page of runs costs one round trip for all three.
_VALUES = (
    "SELECT 0 AS kind, run_id, key, value AS text, CAST(NULL AS DOUBLE PRECISION) AS number"
    " FROM params WHERE run_id IN ({ids})"
    " UNION ALL SELECT 1, run_id, key, value, NULL FROM tags WHERE run_id IN ({ids})"
    " UNION ALL SELECT 2, run_id, key, NULL, value FROM latest_metrics WHERE run_id IN ({ids})"
    " ORDER BY 1, 3"
)
_KINDS = 3  # params, tags, metrics


def _values(conn: Database, ids: list[str]) -> list[dict[str, dict[str, Any]]]:
    """``[params, tags, metrics]``, each ``{run id: {key: value}}``, in chunks of ids that
    stay far below the databases' limits on bound parameters."""
    found: list[dict[str, dict[str, Any]]] = [{run_id: {} for run_id in ids} for _ in range(_KINDS)]
    for start in range(0, len(ids), _CHUNK):
        binds = {f"i{n}": run_id for n, run_id in enumerate(ids[start : start + _CHUNK])}
        rows = conn.execute(_VALUES.format(ids=", ".join(f":{name}" for name in binds)), binds)
        for kind, run_id, key, text, number in rows:
            found[kind][run_id][key] = text if kind < 2 else number
    return found


def _records(conn: Database, rows: list[Record]) -> list[RunRecord]:
    """The runs of ``rows`` with their params, final metrics and tags (one query more)."""
    ids = [str(row["id"]) for row in rows]
    if not ids:
        return []
    params, tags, metrics = _values(conn, ids)
    return [_record(row, params[row["id"]], metrics[row["id"]], tags[row["id"]]) for row in rows]


def _record(
    row: Record, params: dict[str, Any], metrics: dict[str, Any], tags: dict[str, Any]
) -> RunRecord:
    dirty = row["git_dirty"]
    return RunRecord(
        id=row["id"],
        experiment=row["experiment"],
        name=row["name"],
        status=row["status"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        exit_code=row["exit_code"],
        info=RunInfo(
            command=row["command"],
            git_commit=row["git_commit"],
            git_dirty=None if dirty is None else bool(dirty),
            python_version=row["python_version"],
            host=row["host"],
            user=row["user"],
        ),
        params={str(k): str(v) for k, v in params.items()},
        metrics={str(k): float(v) for k, v in sorted(metrics.items())},
        tags={str(k): str(v) for k, v in tags.items()},
    )


def resolve_run_id(ws: Workspace, ref: str) -> str:
    """The full id of the run ``ref`` names: its id or a unique prefix (at least 4 chars)."""
    ref = ref.strip()
    if len(ref) < 4 or not all(c in "0123456789abcdef" for c in ref):
        raise InvalidArgumentError(
            f"{ref!r} is not a run id", hint="give a run id or a prefix of at least 4 hex chars"
        )
    rows = ws.conn.execute(
        "SELECT id FROM runs WHERE id >= ? AND id < ? LIMIT 2", (ref, ref + "g")
    ).fetchall()
    if not rows:
        raise NotFoundError(f"no run {ref!r} in {ws.home}", hint="list runs: amlpkg runs list")
    if len(rows) > 1:
        raise InvalidArgumentError(f"run prefix {ref!r} is ambiguous", hint="give more characters")
    return str(rows[0][0])


def get_run(ws: Workspace, ref: str) -> RunRecord:
    """The run with id (or unique id prefix) ``ref``, with params, final metrics and tags."""
    run_id = resolve_run_id(ws, ref)
    row = ws.conn.execute(_SELECT + " WHERE r.id = ?", (run_id,)).fetchone()
    return _records(ws.conn, [row])[0]


def search_runs(ws: Workspace, query: RunQuery) -> list[RunRecord]:
    """One page of runs: filtered, sorted and paged in the database (see :mod:`run_search`)."""
    return search_page(ws, query)[0]


def search_page(ws: Workspace, query: RunQuery) -> tuple[list[RunRecord], int | None]:
    """One page of runs and how many runs match in all (None for a page past the end)."""
    check_page(query.limit, query.offset)
    sql, binds = page_sql(query)
    rows = ws.conn.execute(sql, binds).fetchall()
    return _records(ws.conn, rows), int(rows[0][TOTAL]) if rows else None


def list_runs(
    ws: Workspace,
    experiment: str | None = None,
    status: str | None = None,
    limit: int | None = 50,
    *,
    search: str | None = None,
    tags: dict[str, str] | None = None,
    sort: str | None = None,
    order: str | None = None,
    offset: int = 0,
) -> list[RunRecord]:
    """Runs, newest first, optionally of one experiment and/or one status.

    ``search`` (words and comparisons such as ``metrics.acc > 0.9``, see
    :mod:`amlpkg.trainer.store.run_filter`), ``tags`` (exact values), ``sort``
    (``start_time``, ``duration``, ``metrics.KEY``, ``params.KEY``...), ``order``
    (``asc``/``desc``) and ``offset`` narrow, order and page the list.
    """
    clauses = parse_search(search)
    clauses += [Comparison("tags", k, "=", str(v)) for k, v in (tags or {}).items()]
    query = RunQuery(experiment, status, clauses, parse_sort(sort, order), limit, offset)
    return search_runs(ws, query)


def best_run(
    ws: Workspace, metric: str, *, maximize: bool = True, experiment: str | None = None
) -> RunRecord:
    """The run whose final value of ``metric`` is the highest (or lowest)."""
    order = Sort("metrics", metric, descending=maximize)
    found = search_runs(ws, RunQuery(experiment=experiment, sort=order, limit=1))
    if not found or metric not in found[0].metrics:
        where = f" in experiment {experiment!r}" if experiment else ""
        raise NotFoundError(f"no run{where} has logged metric {metric!r}")
    return found[0]
