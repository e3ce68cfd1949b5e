"""The arithmetic and the tables of :mod:`benchmarks.control_plane_mlflow` (no I/O, unit-tested).

Every measure is one row with the amlpkg and the MLflow value side by side and their
ratio amlpkg/MLflow. The goal: throughput at least MLflow's (ratio >= 1), p99 latency
lower (ratio < 1); p50 rows are shown without a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from benchmarks.report import md_table

COLUMNS = ["measure", "unit", "amlpkg", "MLflow", "amlpkg/MLflow", "goal", "verdict"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linearly interpolated; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LogResult:
    """One side's logging measure: points sent by all clients, stored, and the wall time."""

    sent: int
    stored: int
    seconds: float
    clients: int

    @property
    def per_second(self) -> float:
        """Points stored per second of wall time (NaN when nothing was timed)."""
        return self.stored / self.seconds if self.seconds > 0 else math.nan

    @property
    def lost(self) -> int:
        """Points sent but not found in the database afterwards."""
        return self.sent - self.stored


def wall_seconds(results: Sequence[dict[str, float]]) -> float:
    """From the first client's start to the last client's end (their own clocks' ``time()``)."""
    if not results:
        return math.nan
    return max(r["end"] for r in results) - min(r["start"] for r in results)


@dataclass(frozen=True)
class Row:
    """One measure, both sides. ``goal`` is ">=1" (throughput), "<1" (latency) or ""."""

    measure: str
    unit: str
    amlpkg: float | None
    mlflow: float | None
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """amlpkg / MLflow, or None when a side is missing or zero."""
        if self.amlpkg is None or self.mlflow is None or not self.mlflow or math.isnan(self.mlflow):
            return None
        return self.amlpkg / self.mlflow

    @property
    def verdict(self) -> str:
        """MET / NOT MET against the goal, NOT MEASURED without both sides, "" without a goal."""
        if not self.goal:
            return ""
        ratio = self.ratio
        if ratio is None or math.isnan(ratio):
            return "NOT MEASURED"
        met = ratio >= 1.0 if self.goal == ">=1" else ratio < 1.0
        return "MET" if met else "NOT MET"


def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit.endswith("ms"):
        return f"{value:.1f}" if value >= 10 else f"{value:.3f}" if value < 1 else f"{value:.2f}"
    return f"{value:,.0f}"


def cells(row: Row) -> list[str]:
    """One row as text."""
    ratio = row.ratio
    goal = {">=1": "ratio >= 1", "<1": "ratio < 1"}.get(row.goal, "")
    return [
        row.measure + (f" ({row.note})" if row.note else ""),
        row.unit,
        _number(row.amlpkg, row.unit),
        _number(row.mlflow, row.unit),
        "-" if ratio is None or math.isnan(ratio) else f"{ratio:.2f}x",
        goal,
        row.verdict,
    ]


def rich_table(rows: Sequence[Row], title: str) -> Table:
    """The console table, verdicts coloured."""
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("amlpkg", "MLflow") else "left")
    for row in rows:
        text = cells(row)
        style = {"MET": "green", "NOT MET": "red"}.get(text[-1], "yellow")
        table.add_row(*text[:-1], f"[{style}]{text[-1]}[/{style}]" if text[-1] else "")
    return table


def section(
    rows: Sequence[Row], meta: dict[str, dict[str, str]], notes: Sequence[str], title: str
) -> str:
    """The Markdown body of the ``control-plane-mlflow`` section of ``RESULTS.md``."""
    parts = [f"## {title}", ""]
    body = [[*c[:-1], f"**{c[-1]}**" if c[-1] else ""] for c in map(cells, rows)]
    parts += [md_table(COLUMNS, body), ""]
    for name, values in meta.items():
        parts += [f"**{name}**: " + "; ".join(f"{k}: {v}" for k, v in values.items()), ""]
    parts += [f"- {note}" for note in notes]
    return "\n".join(parts).rstrip() + "\n"
