"""The searched experiment of :mod:`benchmarks.control_plane_mlflow`, written in bulk.

10,000 runs through either REST API take minutes on 2 cores (neither server can create
runs in bulk: a run and its values are two requests each), longer than the whole
benchmark may. So both are seeded the same way, straight into each server's own tables
with PostgreSQL's ``COPY`` in one transaction, then ``ANALYZE``d: run ``seed-I`` with
param ``i`` = I and one value of metric ``acc`` (:func:`acc_value`, equal on both sides),
in an experiment made through the server's API. MLflow keeps a run's latest metric
values in a table of their own (``latest_metrics``, what its search filters and sorts
on) and its run name as a tag, so those rows are written as its store writes them; ours
are filled from the history by the statement our schema upgrade fills them with.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from amlpkg.trainer.migrations.trainer_0002_latest_metrics import BACKFILL as LATEST_BACKFILL
from benchmarks.control_plane_worker import acc_value


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed_amlpkg(cursor: Any, experiment: str, runs: int) -> None:
    """``runs`` runs into our experiment named ``experiment`` (it exists)."""
    row = cursor.execute("SELECT id FROM experiments WHERE name = %s", (experiment,)).fetchone()
    now = time.time()
    ids = [uuid.uuid4().hex for _ in range(runs)]
    rows = [(ids[i], row[0], f"seed-{i}", "completed", now - runs + i, now) for i in range(runs)]
    _copy(cursor, "runs", ("id", "experiment_id", "name", "status", "start_time", "end_time"), rows)
    _copy(
        cursor, "params", ("run_id", "key", "value"), [(r, "i", str(i)) for i, r in enumerate(ids)]
    )
    metrics = [(r, "acc", acc_value(i), 0, now) for i, r in enumerate(ids)]
    _copy(cursor, "metrics", ("run_id", "key", "value", "step", "timestamp"), metrics)
    cursor.execute(LATEST_BACKFILL)  # the final values, as logging through the store keeps them


def seed_mlflow(cursor: Any, experiment_id: str, runs: int, artifact_root: str) -> None:
    """``runs`` runs into MLflow's experiment ``experiment_id`` (it exists)."""
    now = int(time.time() * 1000)
    ids = [uuid.uuid4().hex for _ in range(runs)]
    columns = [
        "run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id",
        "status", "start_time", "end_time", "source_version", "lifecycle_stage",
        "artifact_uri", "experiment_id",
    ]  # fmt: skip
    rows = [
        (
            r,
            f"seed-{i}",
            "LOCAL",
            "",
            "",
            "bench",
            "FINISHED",
            now - runs + i,
            now,
            "",
            "active",
            f"{artifact_root}/{experiment_id}/{r}/artifacts",
            int(experiment_id),
        )
        for i, r in enumerate(ids)
    ]
    _copy(cursor, "runs", columns, rows)
    tags = [("mlflow.runName", f"seed-{i}", r) for i, r in enumerate(ids)]
    _copy(cursor, "tags", ("key", "value", "run_uuid"), tags)
    _copy(
        cursor,
        "params",
        ("key", "value", "run_uuid"),
        [("i", str(i), r) for i, r in enumerate(ids)],
    )
    metrics = [("acc", acc_value(i), now, r, 0, False) for i, r in enumerate(ids)]
    names = ("key", "value", "timestamp", "run_uuid", "step", "is_nan")
    _copy(cursor, "metrics", names, metrics)
    _copy(cursor, "latest_metrics", names, metrics)


def seed(side: str, database: str, experiment: str, runs: int) -> float:
    """Seed ``side``'s database at ``database``; seconds it took (not a measure)."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(database.replace("+psycopg", ""), connect_timeout=10) as conn:
        with conn.cursor() as cursor:
            if side == "amlpkg":
                seed_amlpkg(cursor, experiment, runs)
            else:
                seed_mlflow(cursor, experiment, runs, "mlflow-artifacts:")
        conn.commit()
    with psycopg.connect(database.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("ANALYZE")  # fresh statistics on both sides, as autovacuum makes them
    return time.perf_counter() - started
