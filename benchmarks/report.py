"""The output of one run: console tables and ``RESULTS.md``.

The rows and the targets of issue 11 live in :mod:`benchmarks.targets`; this
module only formats them. perf_analyzer rows (the measure) come first, the rows of
the harness's own socket clients (wrk, grpc.aio; opt-in) after them.
"""

from __future__ import annotations

import math
import re

from rich.table import Table

from benchmarks.inprocess import InProcessResult, best_throughput
from benchmarks.targets import PA, Row, Target, ceiling_text, ok, ratio_text, verdict

COLUMNS = [
    "server",
    "path",
    "client",
    "wire",
    "model",
    "conc.",
    "req/s",
    "p50 ms",
    "p99 ms",
    "vs in-proc ORT",
    "server CPU (cores)",
    "client CPU (cores)",
    "errors",
]
_NUMERIC = {
    "conc.",
    "req/s",
    "p50 ms",
    "p99 ms",
    "vs in-proc ORT",
    "server CPU (cores)",
    "client CPU (cores)",
}
TARGET_COLUMNS = [
    "target",
    "path",
    "measured",
    "ratio",
    "any server's ceiling here",
    "needed",
    "verdict",
]
INPROC_COLUMNS = ["model", "batch", "spinning", "intra-op threads", "samples/s", "p50 ms per call"]


def _cores(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def row_cells(row: Row, inproc: list[InProcessResult]) -> list[str]:
    """One table row: the measurement, or why there is none."""
    head = [row.server, row.protocol, row.client, row.wire, row.model, str(row.concurrency)]
    if not ok(row) or row.result is None:
        reason = row.error or (row.result.first_error if row.result else "no result")
        return [*head, "-", "-", "-", "-", "-", "-", f"failed: {reason[:100]}"]
    res = row.result
    limit = best_throughput(inproc, row.model)
    vs = f"{res.req_per_s / limit.samples_per_s:.1%}" if limit else "-"
    errors = f"{res.errors}" + (f" ({res.first_error[:60]})" if res.first_error else "")
    return [
        *head,
        f"{res.req_per_s:,.0f}",
        f"{res.p50_ms:.2f}",
        f"{res.p99_ms:.2f}",
        vs,
        _cores(res.server_cpu),
        _cores(res.client_cpu),
        errors,
    ]


def target_cells(target: Target) -> list[str]:
    """One target row (verdict without markup)."""
    need = f"{target.required:.2f}" + ("" if "cores" in target.goal else "x")
    return [
        target.goal,
        target.protocol,
        target.detail,
        ratio_text(target),
        ceiling_text(target),
        need,
        verdict(target),
    ]


def inproc_cells(point: InProcessResult) -> list[str]:
    """One in-process row."""
    return [
        point.model,
        str(point.batch),
        "on" if point.spinning else "off",
        str(point.threads or "default"),
        f"{point.samples_per_s:,.0f}",
        f"{point.p50_ms:.3f}",
    ]


def groups(rows: list[Row]) -> list[tuple[str, list[Row]]]:
    """The row tables: perf_analyzer's, then the socket clients' (when any)."""
    found = []
    pa_rows = [r for r in rows if r.client == PA]
    if pa_rows:
        found.append(("perf_analyzer (NVIDIA's C++ client; the targets use these rows)", pa_rows))
    other = [r for r in rows if r.client != PA]
    if other:
        found.append(("Socket clients (wrk for HTTP, grpc.aio for gRPC; for comparison)", other))
    return found


def _table(title: str, header: list[str], body: list[list[str]]) -> Table:
    table = Table(title=title)
    for column in header:
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for cells in body:
        table.add_row(*cells)
    return table


def rich_tables(
    rows: list[Row], inproc: list[InProcessResult], targets: list[Target]
) -> list[Table]:
    """The results, in-process and target tables for the console."""
    tables = [
        _table(title, COLUMNS, [row_cells(r, inproc) for r in group])
        for title, group in groups(rows)
    ]
    tables.append(
        _table(
            "In-process ONNX Runtime (the limit)",
            INPROC_COLUMNS,
            [inproc_cells(p) for p in inproc],
        )
    )
    styled = []
    for target in targets:
        cells = target_cells(target)
        style = {"MET": "green", "NOT MET": "red"}.get(cells[-1], "yellow")
        styled.append([*cells[:-1], f"[{style}]{cells[-1]}[/{style}]"])
    tables.append(_table("Targets (issue 11)", TARGET_COLUMNS, styled))
    return tables


def md_table(header: list[str], body: list[list[str]]) -> str:
    """A Markdown table ('|' in cells replaced, so it cannot break the table)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def markdown(
    rows: list[Row],
    inproc: list[InProcessResult],
    targets: list[Target],
    meta: dict[str, dict[str, str]],
    notes: list[str],
    extra: str = "",
) -> str:
    """The whole ``RESULTS.md``: setup, targets, tables, notes, then ``extra`` (the A/B)."""
    parts = ["# Serving benchmarks (issue 11: perf_analyzer, HTTP / gRPC / shared memory)", ""]
    for title, values in meta.items():
        parts += [f"## {title}", ""]
        parts += [f"- **{k}**: {v}" for k, v in values.items()]
        parts.append("")
    parts += ["## Targets", ""]
    body = [[*c[:-1], f"**{c[-1]}**"] for c in (target_cells(t) for t in targets)]
    parts.append(md_table(TARGET_COLUMNS, body))
    for title, group in groups(rows):
        parts += ["", f"## {title}", ""]
        parts.append(md_table(COLUMNS, [row_cells(r, inproc) for r in group]))
    parts += ["", "## In-process ONNX Runtime (the limit)", ""]
    parts.append(md_table(INPROC_COLUMNS, [inproc_cells(p) for p in inproc]))
    parts += ["", "## Notes", ""]
    parts += [f"- {note}" for note in notes]
    text = "\n".join(parts) + "\n"
    return text + ("\n" + extra.strip() + "\n" if extra.strip() else "")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- section:{name} begin -->", f"<!-- section:{name} end -->"


def section(text: str, name: str) -> str:
    """The marked section ``name`` of ``text`` (markers included), or ""."""
    begin, end = _markers(name)
    start, stop = text.find(begin), text.find(end)
    return text[start : stop + len(end)] if 0 <= start < stop else ""


def sections(text: str) -> str:
    """Every marked section of ``text`` (A/B, profiles, batch scoring, ...), in order."""
    found = re.findall(r"<!-- section:([\w.-]+) begin -->", text)
    return "\n\n".join(filter(None, (section(text, name) for name in dict.fromkeys(found))))


def put_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name`` replaced by ``body`` (appended when absent)."""
    begin, end = _markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    old = section(text, name)
    if old:
        return text.replace(old, block)
    return text.rstrip("\n") + ("\n\n" if text.strip() else "") + block + "\n"
