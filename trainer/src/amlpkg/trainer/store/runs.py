"""Rows of tracked runs: runs, params, metrics (full history), tags and artifacts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.db import write_tx
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.values import check_key, metric_value

RUN_STATUSES = ("running", "completed", "failed", "killed")
DEFAULT_EXPERIMENT = "default"
# A metric's final value: highest step, the latest logged on ties (see trainer_0002).
_UPSERT_LATEST = (
    "INSERT INTO latest_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step,"
    " timestamp = excluded.timestamp WHERE excluded.step > latest_metrics.step"
    " OR (excluded.step = latest_metrics.step AND excluded.timestamp >= latest_metrics.timestamp)"
)


@dataclass(frozen=True)
class RunInfo:
    """Where and how a run was made: what ``runs`` stores besides its logs."""

    command: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    python_version: str | None = None
    host: str | None = None
    user: str | None = None


@dataclass
class RunRecord:
    """One run as read back from the store."""

    id: str
    experiment: str
    name: str | None
    status: str
    start_time: float
    end_time: float | None
    exit_code: int | None
    info: RunInfo
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # final (last-step) values
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "experiment": self.experiment,
            "name": self.name,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "exit_code": self.exit_code,
            "command": self.info.command,
            "git_commit": self.info.git_commit,
            "git_dirty": self.info.git_dirty,
            "python_version": self.info.python_version,
            "host": self.info.host,
            "user": self.info.user,
            "params": self.params,
            "metrics": self.metrics,
            "tags": self.tags,
        }


def create_run(
    ws: Workspace,
    experiment: str | None = None,
    name: str | None = None,
    info: RunInfo | None = None,
) -> str:
    """Insert a new run with status ``running``; return its id."""
    experiment = experiment or DEFAULT_EXPERIMENT
    info = info or RunInfo()
    run_id = uuid.uuid4().hex
    now = time.time()
    with write_tx(ws.conn) as conn:
        conn.execute(
            "INSERT INTO experiments (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (experiment, now),
        )
        exp_id = conn.execute(
            "SELECT id FROM experiments WHERE name = ?", (experiment,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO runs (id, experiment_id, name, status, start_time, command,"
            ' git_commit, git_dirty, python_version, host, "user")'
            " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                exp_id,
                name,
                now,
                info.command,
                info.git_commit,
                None if info.git_dirty is None else int(info.git_dirty),
                info.python_version,
                info.host,
                info.user,
            ),
        )
    return run_id


def update_info(ws: Workspace, run_id: str, info: RunInfo) -> None:
    """Fill in the provenance columns of a run (values that are None are left alone)."""
    columns = {
        "command": info.command,
        "git_commit": info.git_commit,
        "git_dirty": None if info.git_dirty is None else int(info.git_dirty),
        "python_version": info.python_version,
        "host": info.host,
        "user": info.user,
    }
    sets = {k: v for k, v in columns.items() if v is not None}
    if not sets:
        return
    assignments = ", ".join(f"{k} = ?" for k in sets)
    with write_tx(ws.conn) as conn:
        conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*sets.values(), run_id))


def finish_run(ws: Workspace, run_id: str, status: str, exit_code: int | None = None) -> None:
    """Mark a run as ended with ``status`` (completed, failed or killed)."""
    if status not in RUN_STATUSES or status == "running":
        raise InvalidArgumentError(
            f"unknown final run status {status!r}", hint="use completed, failed or killed"
        )
    with write_tx(ws.conn) as conn:
        conn.execute(
            "UPDATE runs SET status = ?, end_time = ?, exit_code = ? WHERE id = ?",
            (status, time.time(), exit_code, run_id),
        )


def _require_run(ws: Workspace, run_id: str) -> None:
    if ws.conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise NotFoundError(f"no run {run_id!r} in {ws.home}", hint="list runs: amlpkg runs list")


def _set_pairs(
    ws: Workspace, run_id: str, table: Literal["params", "tags"], kind: str, values: dict[str, Any]
) -> None:
    """Upsert ``values`` (keys checked as ``kind`` names, values as text) into ``table``."""
    rows = [(run_id, check_key(kind, k), str(v)) for k, v in values.items()]
    _require_run(ws, run_id)
    with write_tx(ws.conn) as conn:
        conn.executemany(
            f"INSERT INTO {table} (run_id, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            rows,
        )


def log_params(ws: Workspace, run_id: str, params: dict[str, Any]) -> None:
    """Record parameters; a key logged again keeps its latest value."""
    _set_pairs(ws, run_id, "params", "param", params)


def log_metrics(ws: Workspace, run_id: str, metrics: dict[str, float], step: int | None) -> None:
    """Append metric values; every value is kept with its step and timestamp.

    Without a step, each key continues from its own last step + 1 (0 for the first).
    """
    log_metric_points(ws, run_id, [(key, value, step) for key, value in metrics.items()])


def log_metric_points(
    ws: Workspace, run_id: str, points: Sequence[tuple[str, float, int | None]]
) -> None:
    """Append ``(key, value, step)`` points in order, in one transaction.

    A point without a step continues its key from the key's last step + 1, counting the
    points before it in ``points`` (0 for a key's first).
    """
    checked = [
        (check_key("metric", key), metric_value(key, raw), step) for key, raw, step in points
    ]
    if not checked:
        return
    _require_run(ws, run_id)
    now = time.time()
    with write_tx(ws.conn) as conn:
        stored: dict[str, int | None] = {}  # a key's highest stored step, read when needed
        batch: dict[str, int] = {}  # a key's highest step in this batch so far
        rows: list[tuple[str, str, float, int, float]] = []
        for key, value, step in checked:
            if step is None:
                if key not in stored:
                    found = conn.execute(
                        "SELECT MAX(step) FROM metrics WHERE run_id = ? AND key = ?",
                        (run_id, key),
                    ).fetchone()[0]
                    stored[key] = None if found is None else int(found)
                highest = max(
                    (s for s in (stored[key], batch.get(key)) if s is not None), default=-1
                )
                given = highest + 1
            else:
                given = int(step)
            batch[key] = max(batch.get(key, given), given)
            rows.append((run_id, key, value, given, now))
        conn.executemany(
            "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        # Each key's final point of the batch (the last of its highest step) replaces the
        # stored final value unless that one is at a higher step; keys in a fixed order so
        # two batches of one run never wait on each other's rows (no deadlock).
        finals: dict[str, tuple[str, str, float, int, float]] = {}
        for row in rows:
            if row[1] not in finals or row[3] >= finals[row[1]][3]:
                finals[row[1]] = row
        conn.executemany(_UPSERT_LATEST, [finals[key] for key in sorted(finals)])


def set_tags(ws: Workspace, run_id: str, tags: dict[str, Any]) -> None:
    """Set tags on a run (overwriting keys that exist)."""
    _set_pairs(ws, run_id, "tags", "tag", tags)


def add_artifact(ws: Workspace, run_id: str, path: str, sha256: str, size: int) -> None:
    """Record that the run produced the stored blob ``sha256`` under ``path``."""
    _require_run(ws, run_id)
    with write_tx(ws.conn) as conn:
        conn.execute(
            "INSERT INTO artifacts (run_id, path, sha256, size, created) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, path) DO UPDATE SET sha256 = excluded.sha256,"
            " size = excluded.size, created = excluded.created",
            (run_id, path, sha256, size, time.time()),
        )


def list_artifacts(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    """The artifacts of a run: path, sha256, size."""
    rows = ws.conn.execute(
        "SELECT path, sha256, size FROM artifacts WHERE run_id = ? ORDER BY path", (run_id,)
    ).fetchall()
    return [dict(r) for r in rows]


def get_artifact(ws: Workspace, run_id: str, path: str) -> tuple[str, int]:
    """``(sha256, size)`` of the artifact ``path`` of run ``run_id``."""
    row = ws.conn.execute(
        "SELECT sha256, size FROM artifacts WHERE run_id = ? AND path = ?", (run_id, path)
    ).fetchone()
    if row is None:
        _require_run(ws, run_id)
        raise NotFoundError(
            f"run {run_id} has no artifact {path!r}",
            hint=f"see its artifacts: amlpkg runs show {run_id}",
        )
    return str(row["sha256"]), int(row["size"])


def metric_history(ws: Workspace, run_id: str, key: str) -> list[tuple[int, float, float]]:
    """Every ``(step, value, timestamp)`` of one metric, in step order."""
    rows = ws.conn.execute(
        "SELECT step, value, timestamp FROM metrics WHERE run_id = ? AND key = ?"
        " ORDER BY step, timestamp, id",
        (run_id, key),
    ).fetchall()
    return [(int(r[0]), float(r[1]), float(r[2])) for r in rows]
