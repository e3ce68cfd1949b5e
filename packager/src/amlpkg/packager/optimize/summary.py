"""A Markdown section for ``benchmarks/RESULTS.md`` from an optimize report.

The benchmark scripts call :func:`markdown_section` with what
:func:`amlpkg.packager.optimize.optimize` returned; numbers are this machine's.
"""

from __future__ import annotations

import platform
from typing import Any

from amlpkg.packager.optimize.report import OptimizeReport


def _cell(batches: dict[str, dict[str, float]] | None, batch: str, key: str) -> str:
    if not batches or batch not in batches:
        return "-"
    value = batches[batch][key]
    return f"{value:.4f}" if key == "p50_ms" else f"{value:,.0f}"


def markdown_section(report: OptimizeReport, *, title: str | None = None) -> str:
    """``report`` as a Markdown table: p50 (ms) and throughput (samples/s) per batch size."""
    sizes = list(report.baseline.get("batches", {}))
    head = ["variant", "size (KiB)", *(f"p50 ms @{b}" for b in sizes)]
    head += [*(f"samples/s @{b}" for b in sizes), "speed", "max abs err", "verdict"]
    lines = [
        f"### {title or f'amlpkg optimize {report.model} --target {report.target}'}",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'};"
        f" provider {report.provider}; validation sample: "
        + ("synthetic, from the signature" if report.synthetic_validation else report.validation),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    base = report.baseline.get("batches")
    rows: list[tuple[str, int | None, Any, str, str, str]] = [
        ("original", None, base, "1.00x", "0", "reference")
    ]
    for v in report.variants:
        speed = v.measurements.get("speedup")
        verdict = ("chosen; " if v.chosen else "") + ("accepted" if v.accepted else "refused")
        rows.append(
            (
                f"{v.kind} {v.precision}",
                v.size,
                v.measurements.get("batches"),
                "-" if speed is None else f"{speed:.2f}x",
                f"{v.accuracy.get('max_abs_error', float('nan')):.3g}",
                verdict if v.accepted else f"{verdict}: {v.reason}",
            )
        )
    for name, size, batches, speed, error, verdict in rows:
        cells = [name, "-" if size is None else f"{size / 1024:.1f}"]
        cells += [_cell(batches, b, "p50_ms") for b in sizes]
        cells += [_cell(batches, b, "throughput_per_s") for b in sizes]
        cells += [speed, error, verdict]
        lines.append("| " + " | ".join(cells) + " |")
    if report.choice:
        lines += ["", f"`--auto`: {report.choice}"]
    if report.measure_note:
        lines += ["", report.measure_note]
    return "\n".join(lines) + "\n"
