"""Reading runs back: one run, a filtered list, the best by a metric."""

from __future__ import annotations

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.db import Database, Record
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.store.runs import RunInfo, RunRecord

_SELECT = (
    "SELECT r.*, e.name AS experiment FROM runs r JOIN experiments e ON e.id = r.experiment_id"
)
# The final value of each metric: the one with the highest step (latest on ties).
_FINAL_METRICS = (
    "SELECT key, value FROM (SELECT key, value, ROW_NUMBER() OVER ("
    "PARTITION BY key ORDER BY step DESC, timestamp DESC, id DESC) AS rn"
    " FROM metrics WHERE run_id = ?) AS ranked WHERE rn = 1"
)


def _record(conn: Database, row: Record) -> RunRecord:
    run_id = row["id"]
    dirty = row["git_dirty"]
    return RunRecord(
        id=run_id,
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
        params={
            r[0]: r[1]
            for r in conn.execute(
                "SELECT key, value FROM params WHERE run_id = ? ORDER BY key", (run_id,)
            )
        },
        metrics={r[0]: float(r[1]) for r in conn.execute(_FINAL_METRICS, (run_id,))},
        tags={
            r[0]: r[1]
            for r in conn.execute(
                "SELECT key, value FROM tags WHERE run_id = ? ORDER BY key", (run_id,)
            )
        },
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
    return _record(ws.conn, row)


def list_runs(
    ws: Workspace,
    experiment: str | None = None,
    status: str | None = None,
    limit: int | None = 50,
) -> list[RunRecord]:
    """Runs, newest first, optionally of one experiment and/or one status."""
    clauses: list[str] = []
    args: list[object] = []
    if experiment is not None:
        clauses.append("e.name = ?")
        args.append(experiment)
    if status is not None:
        clauses.append("r.status = ?")
        args.append(status)
    sql = _SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "")
    sql += " ORDER BY r.start_time DESC, r.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return [_record(ws.conn, row) for row in ws.conn.execute(sql, args).fetchall()]


def best_run(
    ws: Workspace, metric: str, *, maximize: bool = True, experiment: str | None = None
) -> RunRecord:
    """The run whose final value of ``metric`` is the highest (or lowest)."""
    candidates = [
        r for r in list_runs(ws, experiment=experiment, limit=None) if metric in r.metrics
    ]
    if not candidates:
        where = f" in experiment {experiment!r}" if experiment else ""
        raise NotFoundError(f"no run{where} has logged metric {metric!r}")
    key = (lambda r: r.metrics[metric]) if maximize else (lambda r: -r.metrics[metric])
    return max(candidates, key=key)
