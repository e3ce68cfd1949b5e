"""A metric's history thinned in the database: a million-step run opens as a light chart.

The steps are cut into equal buckets and each bucket answers its lowest and highest
value in one ``GROUP BY`` (the same on SQLite and PostgreSQL), so a spike survives the
thinning where picking every n-th point would drop it. Python never sees the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.store import runs as store_runs

Point = tuple[int, float, float]  # step, value, timestamp

_RUN_KEY = "FROM metrics WHERE run_id = :run AND key = :key"
_STATS = f"SELECT COUNT(*), MIN(step), MAX(step) {_RUN_KEY}"
_BUCKET = "(step - CAST(:lo AS BIGINT)) / CAST(:width AS BIGINT)"
# Both answer, per non-empty bucket in step order: first and last step, lowest and highest
# value, the time at the first and at the last step. PostgreSQL aggregates one pass of the
# rows; SQLite has no sorted GROUP BY here (it would sort a million rows in a temporary
# B-tree), so it reads each bucket as one range of the metrics_by_run index instead.
_GROUPED = (
    "SELECT MIN(step), MAX(step), MIN(value), MAX(value), MIN(timestamp), MAX(timestamp)"
    f" {_RUN_KEY} GROUP BY {_BUCKET} ORDER BY 1"
)
_IN_BUCKET = f"{_RUN_KEY} AND step >= lo AND step < lo + CAST(:width AS BIGINT)"
_RANGES = (
    "WITH RECURSIVE b(lo) AS (SELECT CAST(:lo AS BIGINT) UNION ALL"
    " SELECT lo + CAST(:width AS BIGINT) FROM b WHERE lo + CAST(:width AS BIGINT) <= :hi),"
    f" agg(s_lo, s_hi, v_lo, v_hi) AS (SELECT (SELECT MIN(step) {_IN_BUCKET}),"
    f" (SELECT MAX(step) {_IN_BUCKET}), (SELECT MIN(value) {_IN_BUCKET}),"
    f" (SELECT MAX(value) {_IN_BUCKET}) FROM b)"
    f" SELECT s_lo, s_hi, v_lo, v_hi, (SELECT MIN(timestamp) {_RUN_KEY} AND step = s_lo),"
    f" (SELECT MAX(timestamp) {_RUN_KEY} AND step = s_hi) FROM agg WHERE s_lo IS NOT NULL"
)
_END = (
    "SELECT step, value, timestamp FROM metrics WHERE run_id = :run AND key = :key"
    " AND step = :step ORDER BY timestamp {order}, id {order} LIMIT 1"
)


@dataclass(frozen=True)
class Series:
    """Points of one metric, and how many values it has in all."""

    points: list[Point]
    logged: int


def _end(ws: Workspace, run_id: str, key: str, step: int, last: bool) -> Point:
    sql = _END.format(order="DESC" if last else "ASC")
    row = ws.conn.execute(sql, {"run": run_id, "key": key, "step": step}).fetchone()
    return int(row[0]), float(row[1]), float(row[2])


def _bucket_points(rows: list[Any]) -> list[Point]:
    """Two points per bucket, low and high, in the order the curve goes there (judged by
    the middles of the buckets on either side), at the bucket's first and last step."""
    middles = [(float(r[2]) + float(r[3])) / 2 for r in rows]
    points: list[Point] = []
    for i, (s_lo, s_hi, v_lo, v_hi, t_lo, t_hi) in enumerate(rows):
        first, last = int(s_lo), int(s_hi)
        low, high = float(v_lo), float(v_hi)
        if first == last:
            points.append((first, low, float(t_lo)))
            continue
        rising = middles[min(i + 1, len(rows) - 1)] >= middles[max(i - 1, 0)]
        a, b = (low, high) if rising else (high, low)
        points += [(first, a, float(t_lo)), (last, b, float(t_hi))]
    return points


def downsampled(ws: Workspace, run_id: str, key: str, max_points: int) -> Series:
    """At most ``max_points`` points of the metric: every one when it has that few, else
    the lowest and highest of each bucket of steps, with the true first and last points."""
    if max_points < 4:
        raise InvalidArgumentError("max_points must be at least 4 to keep lows and highs")
    count, lo, hi = ws.conn.execute(_STATS, {"run": run_id, "key": key}).fetchone()
    count = int(count or 0)
    if count <= max_points:
        return Series(store_runs.metric_history(ws, run_id, key), count)
    buckets = (max_points - 2) // 2
    width = (int(hi) - int(lo)) // buckets + 1
    binds = {"run": run_id, "key": key, "lo": int(lo), "hi": int(hi), "width": width}
    sql = _GROUPED if ws.conn.dialect == "postgresql" else _RANGES
    rows = ws.conn.execute(sql, binds).fetchall()
    points = _bucket_points(rows)
    first, last = _end(ws, run_id, key, int(lo), False), _end(ws, run_id, key, int(hi), True)
    if points[0][0] == first[0]:
        points[0] = first
    else:
        points.insert(0, first)
    if points[-1][0] == last[0]:
        points[-1] = last
    else:
        points.append(last)
    return Series(points, count)
