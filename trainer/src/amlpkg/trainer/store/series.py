"""A metric's history thinned in the database: a million-step run opens as a light chart.

The steps are cut into equal buckets and each bucket answers its lowest and highest
value, so a spike survives the thinning where picking every n-th point would drop it.
Python never sees the rows.

Thinning a million values costs a pass over them; counting them (to know whether the
last answer still holds) costs nearly as much. So the last few thinned series are kept
in memory: a run in progress is recounted on every request, and a new value makes a new
answer at once; a finished run's series is reused while its first and last step stay
the same (two index seeks), for at most :data:`REUSE_S` seconds, so a value logged into
a finished run's earlier steps shows up within that time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.store import runs as store_runs
from amlpkg.trainer.store.run_filter import check_text

Point = tuple[int, float, float]  # step, value, timestamp
CACHED_SERIES = 64  # thinned series kept (each at most max_points points)
REUSE_S = 60.0  # how long a finished run's thinned series is reused without a recount

_RUN_KEY = "FROM metrics WHERE run_id = :run AND key = :key"
_STATS = f"SELECT COUNT(*), MIN(step), MAX(step) {_RUN_KEY}"
# Two index seeks (one MIN or MAX each, so both databases answer from the index's ends).
_ENDS = (
    f"SELECT (SELECT MIN(step) {_RUN_KEY}), (SELECT MAX(step) {_RUN_KEY}),"
    " (SELECT status FROM runs WHERE id = :run)"
)
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


@dataclass(frozen=True)
class _Kept:
    series: Series
    ends: tuple[int, int]
    made: float


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


class _Recent:
    """The last thinned series, by workspace, run, key and size (least recently used go)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[object, ...], _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> _Kept | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[object, ...], series: _Kept) -> None:
        with self._lock:
            self._items[key] = series
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_RECENT = _Recent(CACHED_SERIES)


def downsampled(ws: Workspace, run_id: str, key: str, max_points: int) -> Series:
    """At most ``max_points`` points of the metric: every one when it has that few, else
    the lowest and highest of each bucket of steps, with the true first and last points."""
    if max_points < 4:
        raise InvalidArgumentError("max_points must be at least 4 to keep lows and highs")
    check_text("metric key", key)
    binds = {"run": run_id, "key": key}
    cache_key = (ws.conn.url, run_id, key, max_points)
    kept = _RECENT.get(cache_key)
    if kept is not None:
        lo, hi, status = ws.conn.execute(_ENDS, binds).fetchone()
        fresh = time.monotonic() - kept.made < REUSE_S
        if status not in (None, "running") and kept.ends == (lo, hi) and fresh:
            return kept.series
    made = time.monotonic()
    count, lo, hi = ws.conn.execute(_STATS, binds).fetchone()
    count = int(count or 0)
    if count <= max_points:
        return Series(store_runs.metric_history(ws, run_id, key), count)
    if kept is not None and kept.ends == (lo, hi) and kept.series.logged == count:
        series = kept.series  # a run in progress that logged nothing new since
    else:
        series = _thin(ws, run_id, key, max_points, (count, int(lo), int(hi)))
    _RECENT.put(cache_key, _Kept(series, (int(lo), int(hi)), made))
    return series


def _thin(
    ws: Workspace, run_id: str, key: str, max_points: int, stats: tuple[int, int, int]
) -> Series:
    count, lo, hi = stats
    buckets = (max_points - 2) // 2
    width = (hi - lo) // buckets + 1
    binds = {"run": run_id, "key": key, "lo": lo, "hi": hi, "width": width}
    sql = _GROUPED if ws.conn.dialect == "postgresql" else _RANGES
    rows = ws.conn.execute(sql, binds).fetchall()
    points = _bucket_points(rows)
    first, last = _end(ws, run_id, key, lo, False), _end(ws, run_id, key, hi, True)
    if points[0][0] == first[0]:
        points[0] = first
    else:
        points.insert(0, first)
    if points[-1][0] == last[0]:
        points[-1] = last
    else:
        points.append(last)
    return Series(points, count)
