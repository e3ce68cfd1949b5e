"""A large workspace made fast: 10,000 runs and 1,000,000+ metric points in bulk.

Rows go straight into the workspace's tables through its SQLAlchemy engine (one
transaction; PostgreSQL through ``COPY``), never through 1M API calls: the seed is
the set-up, the benchmark measures what reads it. The shape:

- ``runs`` runs over ``experiments`` experiments, started one minute apart, each with
  params ``lr``, ``batch_size``, ``optimizer``, tag ``team``, and metrics ``acc`` and
  ``loss`` over ``steps`` steps; a few runs are failed or still running;
- one more run, named ``big``, with ``big_points`` values of ``loss`` (its chart is
  what the downsampled series must open fast).
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from amlpkg.store.workspace import Workspace
from amlpkg.trainer.migrations.trainer_0002_latest_metrics import BACKFILL as LATEST_BACKFILL

OPTIMIZERS = ("adam", "sgd", "adamw", "lion")
TEAMS = ("vision", "speech", "nlp", "ranking")
_CHUNK = 50_000


@dataclass(frozen=True)
class Shape:
    """How much to seed."""

    runs: int = 10_000
    experiments: int = 10
    steps: int = 10
    big_points: int = 1_000_000


@dataclass(frozen=True)
class Seeded:
    """What the seed made, for the benchmark's requests and the report."""

    runs: int
    metric_points: int
    big_points: int
    big_run: str
    sample_run: str
    experiment: str
    seconds: float


def _runs(shape: Shape, now: float, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for i in range(shape.runs):
        start = now - (shape.runs - i) * 60.0
        status = "failed" if i % 97 == 0 else "running" if i % 991 == 0 else "completed"
        end = None if status == "running" else start + 30.0 + rng.random() * 600.0
        yield (uuid.uuid4().hex, 1 + i % shape.experiments, f"run-{i:05d}", status, start, end)


def _rows(shape: Shape, runs: list[tuple[Any, ...]], rng: random.Random) -> dict[str, list[Any]]:
    params, tags, metrics = [], [], []
    for i, (run_id, *_rest, start, _end) in enumerate(runs):
        lr = 10 ** -rng.uniform(1, 5)
        params += [(run_id, "lr", f"{lr:.6f}"), (run_id, "batch_size", str(2 ** (4 + i % 6))),
                   (run_id, "optimizer", OPTIMIZERS[i % len(OPTIMIZERS)])]  # fmt: skip
        tags.append((run_id, "team", TEAMS[i % len(TEAMS)]))
        final = rng.random()
        for step in range(shape.steps):
            frac = (step + 1) / shape.steps
            ts = start + step
            metrics.append((run_id, "acc", final * frac, step, ts))
            metrics.append((run_id, "loss", (1 - final) / frac, step, ts))
    return {"params": params, "tags": tags, "metrics": metrics}


def _big_series(run_id: str, points: int, start: float) -> Iterator[tuple[Any, ...]]:
    for step in range(points):
        spike = 5.0 if step % 100_003 == 0 else 0.0  # spikes a min/max thinning must keep
        value = 2.0 * math.exp(-step / (points / 5 + 1)) + 0.05 * math.sin(step / 50) + spike
        yield (run_id, "loss", value, step, start + step * 0.01)


def _insert(ws: Workspace, table: str, columns: tuple[str, ...], rows: Any) -> None:
    """Bulk insert: ``COPY`` on PostgreSQL, ``executemany`` on SQLite, in one transaction."""
    raw: Any = ws.engine.raw_connection()
    try:
        if ws.conn.dialect == "postgresql":
            cursor = raw.cursor()
            names = ", ".join(f'"{c}"' for c in columns)
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            names = ", ".join(f'"{c}"' for c in columns)
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            batch: list[Any] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= _CHUNK:
                    cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
                    batch = []
            if batch:
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
            cursor.execute("COMMIT")
        raw.commit()
    finally:
        raw.close()


def seed(ws: Workspace, shape: Shape = Shape(), *, seed_value: int = 7) -> Seeded:
    """Fill the (empty) workspace ``ws``; returns what it made and how long it took."""
    started = time.perf_counter()
    rng = random.Random(seed_value)
    now = time.time()
    experiments = [(n + 1, f"exp-{n:02d}", now) for n in range(shape.experiments)]
    _insert(ws, "experiments", ("id", "name", "created"), experiments)
    runs = list(_runs(shape, now, rng))
    big_id = uuid.uuid4().hex
    runs.append((big_id, 1, "big", "completed", now - 30.0, now - 1.0))
    _insert(ws, "runs", ("id", "experiment_id", "name", "status", "start_time", "end_time"), runs)
    rows = _rows(shape, runs[:-1], rng)
    _insert(ws, "params", ("run_id", "key", "value"), rows["params"])
    _insert(ws, "tags", ("run_id", "key", "value"), rows["tags"])
    metric_columns = ("run_id", "key", "value", "step", "timestamp")
    _insert(ws, "metrics", metric_columns, rows["metrics"])
    _insert(ws, "metrics", metric_columns, _big_series(big_id, shape.big_points, now - 30.0))
    ws.conn.execute(LATEST_BACKFILL)  # each final value, as logging through the store keeps it
    if ws.conn.dialect == "postgresql":
        # The ids were given: move the sequence past them, as inserts through the store would.
        ws.conn.execute(
            "SELECT setval(pg_get_serial_sequence('experiments', 'id'), MAX(id)) FROM experiments"
        )
    ws.conn.execute("ANALYZE")  # fresh statistics, as autovacuum would make them soon
    return Seeded(
        runs=len(runs),
        metric_points=len(rows["metrics"]) + shape.big_points,
        big_points=shape.big_points,
        big_run=big_id,
        sample_run=runs[len(runs) // 2][0],
        experiment=experiments[3][1],
        seconds=time.perf_counter() - started,
    )
