"""One page of runs: filtered, sorted and counted in the database, the same on SQLite and
PostgreSQL.

The SQL is assembled from fixed fragments only; every key, value and word of a search
is a bound parameter. A metric's final value (highest step, latest on ties) is one row
of ``latest_metrics`` per run and key, kept on write, so sorting or filtering 10,000 runs
by it never reads their histories.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from amlpkg.errors import InvalidArgumentError
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.store.run_filter import Clause, Comparison, Sort, Word, check_text
from amlpkg.trainer.store.runs import RUN_STATUSES

MAX_PAGE = 1000
MAX_OFFSET = 10_000_000
FROM = "FROM runs r JOIN experiments e ON e.id = r.experiment_id"
TOTAL = "total_matching"  # the column of page_sql with the number of runs that match


@dataclass(frozen=True)
class RunQuery:
    """What to list: filters, the order and the page."""

    experiment: str | None = None
    status: str | None = None
    clauses: Sequence[Clause] = ()
    sort: Sort = field(default_factory=lambda: Sort("start_time"))
    limit: int | None = 50
    offset: int = 0


class _Binds:
    """Bound parameters with generated names: values never enter the SQL text."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def __call__(self, value: object) -> str:
        name = f"b{len(self.values)}"
        self.values[name] = value
        return f":{name}"


def _like(word: str) -> str:
    escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _clause_sql(clause: Clause, bind: _Binds) -> str:
    if isinstance(clause, Word):
        pattern = bind(_like(clause.text))
        return (
            f"(LOWER(COALESCE(r.name, '')) LIKE {pattern} ESCAPE '\\'"
            f" OR r.id LIKE {pattern} ESCAPE '\\')"
        )
    return _comparison_sql(clause, bind)


def _comparison_sql(c: Comparison, bind: _Binds) -> str:
    key = bind(c.key)
    value = bind(c.value)
    if c.kind == "metrics":
        # EXISTS, not a value per run: PostgreSQL makes it a semi-join that can read the
        # matching final values from latest_metrics_by_key (key, value) in one range.
        table = "latest_metrics"
        op = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[c.op]
    else:
        table = {"params": "params", "tags": "tags"}[c.kind]
        op = "=" if c.op == "=" else "<>"
    return (
        f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.id AND x.key = {key}"
        f" AND x.value {op} {value})"
    )


def where_sql(query: RunQuery, bind: _Binds) -> str:
    """`` WHERE ...`` for the query's filters ("" when there are none)."""
    parts: list[str] = []
    if query.experiment is not None:
        parts.append(f"e.name = {bind(check_text('experiment', query.experiment))}")
    if query.status is not None:
        if query.status not in RUN_STATUSES:
            raise InvalidArgumentError(
                f"unknown run status {query.status!r}", hint=f"use {', '.join(RUN_STATUSES)}"
            )
        parts.append(f"r.status = {bind(query.status)}")
    # Cheap tests first: SQLite checks them in this order, so a run a tag or a param rules
    # out never has its metrics' final values looked up.
    ordered = sorted(query.clauses, key=lambda c: isinstance(c, Comparison) and c.kind == "metrics")
    parts += [_clause_sql(c, bind) for c in ordered]
    return " WHERE " + " AND ".join(parts) if parts else ""


def _sort_sql(sort: Sort, bind: _Binds) -> str:
    """The expression runs are ordered by."""
    if sort.field == "metrics":
        return "s.value"  # the LEFT JOIN of page_sql
    if sort.field == "params":
        key = bind(sort.key)
        return f"(SELECT p.value FROM params p WHERE p.run_id = r.id AND p.key = {key})"
    if sort.field == "duration":
        return f"(COALESCE(r.end_time, {bind(time.time())}) - r.start_time)"
    if sort.field not in ("start_time", "end_time", "name", "status"):  # never into the SQL
        raise InvalidArgumentError(f"cannot sort runs by {sort.field[:60]!r}")
    return f"r.{sort.field}"


def page_sql(query: RunQuery) -> tuple[str, dict[str, object]]:
    """The SELECT of one page of run rows (``r.*``, ``experiment`` and :data:`TOTAL`), with
    its binds."""
    bind = _Binds()
    where = where_sql(query, bind)
    expr = _sort_sql(query.sort, bind)
    joined = FROM
    if query.sort.field == "metrics":
        key = bind(query.sort.key)
        joined += f" LEFT JOIN latest_metrics s ON s.run_id = r.id AND s.key = {key}"
    direction = "DESC" if query.sort.descending else "ASC"
    # Ties, and runs without the sort value (always last), in a fixed order, so pages
    # neither repeat nor skip a run. NULLS LAST on the output column (SQLite 3.30+,
    # PostgreSQL) keeps the value computed once per run.
    tail = f"r.start_time {direction}, r.id {direction}"
    # Every row also says how many runs match (the page's total): no second query.
    columns = f"r.*, e.name AS experiment, COUNT(*) OVER () AS {TOTAL}"
    if query.sort.field == "start_time":
        sql = f"SELECT {columns} {FROM}{where} ORDER BY {tail}"
    else:
        sql = f"SELECT {columns}, {expr} AS sort_value {joined}{where}"
        sql += f" ORDER BY sort_value {direction} NULLS LAST, {tail}"
    if query.limit is not None:
        sql += f" LIMIT {bind(int(query.limit))}"
    if query.offset:
        if query.limit is None:
            raise InvalidArgumentError("an offset needs a limit", hint="give limit too")
        sql += f" OFFSET {bind(int(query.offset))}"
    return sql, bind.values


def count_sql(query: RunQuery) -> tuple[str, dict[str, object]]:
    """How many runs match the query's filters."""
    bind = _Binds()
    return f"SELECT COUNT(*) {FROM}{where_sql(query, bind)}", bind.values


def check_page(limit: int | None, offset: int) -> None:
    """Refuse a page outside the bounds (the API also caps ``limit`` at :data:`MAX_PAGE`)."""
    if limit is not None and limit < 1:
        raise InvalidArgumentError(f"limit {limit} is out of range", hint="at least 1")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidArgumentError(f"offset {offset} is out of range", hint=f"0 to {MAX_OFFSET}")


def count_runs(ws: Workspace, query: RunQuery) -> int:
    """The number of runs the query's filters match (its page aside)."""
    sql, binds = count_sql(query)
    return int(ws.conn.execute(sql, binds).scalar() or 0)
