"""The A/B's arithmetic and its RESULTS.md section (no timing here, so it is unit-tested).

Issue 9's target: the hardening costs no more than 5% of MLP c16 throughput, i.e.
median(current) / median(base) >= 0.95 for each MLP c16 point measured.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.report import md_table

REQUIRED_RATIO = 0.95


@dataclass(frozen=True)
class Measured:
    """One perf_analyzer run of one side: req/s and server cores, or the error."""

    rps: float | None
    server_cpu: float | None
    error: str


@dataclass(frozen=True)
class Point:
    """Both sides of one (model, path, concurrency) point."""

    model: str
    path: str
    concurrency: int
    base: list[float]  # req/s of every successful base run
    current: list[float]
    base_cpu: float | None  # median server cores
    current_cpu: float | None
    errors: list[str]

    @property
    def ratio(self) -> float | None:
        """median(current) / median(base), None when a side has no successful run."""
        if not self.base or not self.current:
            return None
        return statistics.median(self.current) / statistics.median(self.base)

    @property
    def verdict(self) -> str:
        """MET / NOT MET against the 5% budget for MLP c16; "-" for other points."""
        if self.model != "mlp" or self.concurrency != 16:
            return "-"
        if self.ratio is None:
            return "NOT MEASURED"
        return "MET" if self.ratio >= REQUIRED_RATIO else "NOT MET"


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(samples: dict[tuple[str, str, str, int], list[Measured]]) -> list[Point]:
    """Samples keyed by (side "A"/"B", model, path, concurrency) -> one point per key."""
    keys = sorted({key[1:] for key in samples})
    points = []
    for model, path, level in keys:
        base = samples.get(("A", model, path, level), [])
        current = samples.get(("B", model, path, level), [])
        points.append(
            Point(
                model,
                path,
                level,
                [m.rps for m in base if m.rps is not None],
                [m.rps for m in current if m.rps is not None],
                _median([m.server_cpu for m in base]),
                _median([m.server_cpu for m in current]),
                sorted({m.error for m in [*base, *current] if m.error}),
            )
        )
    return points


def _spread(values: list[float]) -> str:
    if not values:
        return "failed"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:,.0f} ({low:,.0f}..{high:,.0f})"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ab_markdown(points: list[Point], meta: dict[str, str]) -> str:
    """The '## Hardening cost (A/B, issue 9)' section."""
    parts = ["## Hardening cost (A/B, issue 9)", ""]
    parts += [f"- **{k}**: {v}" for k, v in meta.items()]
    parts += [
        f"- **target**: MLP c16 current / base >= {REQUIRED_RATIO:.2f} (the hardening costs "
        "no more than 5%), ratio of the medians",
        "",
    ]
    header = ["model", "path", "conc.", "base req/s, median (min..max)", "current req/s"]
    header += ["current / base", "server CPU base / current", "verdict"]
    body = [
        [
            p.model,
            p.path,
            str(p.concurrency),
            _spread(p.base),
            _spread(p.current),
            "-" if p.ratio is None else f"{p.ratio:.3f}",
            f"{_cores(p.base_cpu)} / {_cores(p.current_cpu)}",
            f"**{p.verdict}**" if p.verdict != "-" else "-",
        ]
        for p in points
    ]
    parts.append(md_table(header, body))
    errors = sorted({e for p in points for e in p.errors})
    parts += [""] + [f"- failed run: {e[:200]}" for e in errors] if errors else []
    return "\n".join(parts) + "\n"
