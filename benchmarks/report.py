"""Results of one run: the rows, the issue's targets checked against them, and the output.

The targets (issue 3, item 8), all measured in the same run:
* MLP at concurrency 16: ours >= 1.5x the best Python peer's req/s, and >= PyTriton's;
* concurrency 1: ours has the lowest p50 of all servers;
* CNN at concurrency 16: ours >= 0.75x in-process ONNX Runtime's best batched throughput.
Each is checked per protocol, since the peers differ by protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.table import Table

from benchmarks.inprocess import InProcessResult, best_throughput
from benchmarks.loadgen import LoadResult

OURS = "amlpkg"
PA = "perf_analyzer"


@dataclass(frozen=True)
class Row:
    """One (server, protocol, model, concurrency) measurement, or why it has none."""

    server: str
    category: str  # "ours", "python" or "triton"
    protocol: str  # "http" or "grpc"
    wire: str
    model: str
    concurrency: int
    result: LoadResult | None
    error: str = ""
    client: str = ""  # "wrk", "grpc.aio" or "perf_analyzer"


@dataclass(frozen=True)
class Target:
    """One target checked: what was compared, the ratio, and whether it is met."""

    goal: str
    protocol: str
    detail: str
    ratio: float | None
    required: float
    met: bool | None  # None: a side of the comparison was not measured


def _ok(row: Row) -> bool:
    return row.result is not None and row.result.requests > 0 and not row.error


def _find(rows: list[Row], server: str, model: str, protocol: str, conc: int) -> Row | None:
    for row in rows:
        if (row.server, row.model, row.protocol, row.concurrency) == (
            server,
            model,
            protocol,
            conc,
        ) and _ok(row):
            return row
    return None


def _rps(row: Row | None) -> float | None:
    return row.result.req_per_s if row is not None and row.result is not None else None


def _target(goal: str, protocol: str, detail: str, ratio: float | None, need: float) -> Target:
    met = None if ratio is None else ratio >= need
    return Target(goal, protocol, detail, ratio, need, met)


def check_targets(rows: list[Row], inproc: list[InProcessResult]) -> list[Target]:
    """Every target of the issue, per protocol, from this run's rows.

    Only rows of our own clients count (wrk, grpc.aio): the same client for every
    server; perf_analyzer cannot measure MLServer or LitServe.
    """
    rows = [r for r in rows if r.client != PA]
    targets: list[Target] = []
    for proto in ("http", "grpc"):
        ours_mlp = _rps(_find(rows, OURS, "mlp", proto, 16))
        peers = [
            r
            for r in rows
            if r.category == "python" and r.model == "mlp" and r.protocol == proto
            if r.concurrency == 16 and _ok(r)
        ]
        best = max(peers, key=lambda r: _rps(r) or 0.0, default=None)
        best_rps = _rps(best)
        ratio = ours_mlp / best_rps if ours_mlp is not None and best_rps else None
        detail = f"ours {_fmt(ours_mlp)} vs {best.server if best else 'no peer'} {_fmt(best_rps)}"
        targets.append(_target("MLP c16 >= 1.5x best Python peer", proto, detail, ratio, 1.5))
        triton = _rps(_find(rows, "pytriton", "mlp", proto, 16))
        ratio = ours_mlp / triton if ours_mlp is not None and triton else None
        detail = f"ours {_fmt(ours_mlp)} vs pytriton {_fmt(triton)}"
        targets.append(_target("MLP c16 >= PyTriton", proto, detail, ratio, 1.0))
        for model in ("mlp", "cnn"):
            targets.append(_lowest_p50(rows, model, proto))
        ours_cnn = _find(rows, OURS, "cnn", proto, 16)
        limit = best_throughput(inproc, "cnn")
        cnn_rps = _rps(ours_cnn)
        ratio = cnn_rps / limit.samples_per_s if cnn_rps is not None and limit else None
        cpu = ours_cnn.result.client_cpu if ours_cnn and ours_cnn.result else math.nan
        detail = (
            f"ours {_fmt(cnn_rps)} req/s vs in-process "
            f"{_fmt(limit.samples_per_s if limit else None)} samples/s"
            f"{f' (batch {limit.batch})' if limit else ''}; client CPU {cpu:.2f} cores"
        )
        targets.append(_target("CNN c16 >= 0.75x in-process ORT", proto, detail, ratio, 0.75))
    return targets


def _lowest_p50(rows: list[Row], model: str, proto: str) -> Target:
    ours = _find(rows, OURS, model, proto, 1)
    others = [
        r
        for r in rows
        if r.server != OURS and r.model == model and r.protocol == proto and r.concurrency == 1
        if _ok(r)
    ]
    best = min(others, key=lambda r: r.result.p50_ms if r.result else math.inf, default=None)
    goal = f"{model.upper()} c1 lowest p50 of all"
    if ours is None or ours.result is None or best is None or best.result is None:
        return _target(goal, proto, "not measured on both sides", None, 1.0)
    ratio = best.result.p50_ms / ours.result.p50_ms
    detail = f"ours {ours.result.p50_ms:.2f} ms vs {best.server} {best.result.p50_ms:.2f} ms"
    return _target(goal, proto, detail, ratio, 1.0)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _verdict(target: Target) -> str:
    if target.met is None:
        return "NOT MEASURED"
    return "MET" if target.met else "NOT MET"


def _row_cells(row: Row, inproc: list[InProcessResult]) -> list[str]:
    head = [row.server, row.protocol, row.client, row.wire, row.model, str(row.concurrency)]
    if not _ok(row) or row.result is None:
        reason = row.error or (row.result.first_error if row.result else "no result")
        return [*head, "-", "-", "-", "-", "-", f"failed: {reason[:80]}"]
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
        f"{res.client_cpu:.2f}",
        errors,
    ]


COLUMNS = [
    "server",
    "protocol",
    "client",
    "wire",
    "model",
    "conc.",
    "req/s",
    "p50 ms",
    "p99 ms",
    "vs in-proc ORT",
    "client CPU (cores)",
    "errors",
]


def rich_tables(
    rows: list[Row], inproc: list[InProcessResult], targets: list[Target]
) -> list[Table]:
    """The results, in-process and target tables for the console."""
    tables = []
    for title, group in _groups(rows):
        table = Table(title=title)
        for column in COLUMNS:
            table.add_column(column, justify="right" if column in _NUMERIC else "left")
        for row in group:
            table.add_row(*_row_cells(row, inproc))
        tables.append(table)
    baseline = Table(title="In-process ONNX Runtime (the limit)")
    for column in ("model", "batch", "spinning", "samples/s", "p50 ms per call"):
        baseline.add_column(column)
    for point in inproc:
        baseline.add_row(
            point.model,
            str(point.batch),
            "on" if point.spinning else "off",
            f"{point.samples_per_s:,.0f}",
            f"{point.p50_ms:.3f}",
        )
    goals = Table(title="Targets (issue 3, item 8)")
    for column in ("target", "protocol", "measured", "ratio", "needed", "verdict"):
        goals.add_column(column)
    for target in targets:
        verdict = _verdict(target)
        style = {"MET": "green", "NOT MET": "red"}.get(verdict, "yellow")
        goals.add_row(
            target.goal,
            target.protocol,
            target.detail,
            "-" if target.ratio is None else f"{target.ratio:.2f}x",
            f"{target.required:.2f}x",
            f"[{style}]{verdict}[/{style}]",
        )
    return [*tables, baseline, goals]


_NUMERIC = {"conc.", "req/s", "p50 ms", "p99 ms", "vs in-proc ORT", "client CPU (cores)"}


def _groups(rows: list[Row]) -> list[tuple[str, list[Row]]]:
    main = [r for r in rows if r.client != PA]
    groups = [("Closed-loop results (wrk for HTTP, grpc.aio for gRPC)", main)]
    pa_rows = [r for r in rows if r.client == PA]
    if pa_rows:
        groups.append(("perf_analyzer (NVIDIA's C++ client; V2 servers only)", pa_rows))
    return groups


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def markdown(
    rows: list[Row],
    inproc: list[InProcessResult],
    targets: list[Target],
    meta: dict[str, dict[str, str]],
    notes: list[str],
) -> str:
    """The whole ``RESULTS.md``: setup, tables, targets and notes."""
    parts = ["# Serving benchmarks (issue 3, item 8)", ""]
    for title, values in meta.items():
        parts += [f"## {title}", ""]
        parts += [f"- **{k}**: {v}" for k, v in values.items()]
        parts.append("")
    parts += ["## Targets", ""]
    parts.append(
        _md_table(
            ["target", "protocol", "measured", "ratio", "needed", "verdict"],
            [
                [
                    t.goal,
                    t.protocol,
                    t.detail,
                    "-" if t.ratio is None else f"{t.ratio:.2f}x",
                    f"{t.required:.2f}x",
                    f"**{_verdict(t)}**",
                ]
                for t in targets
            ],
        )
    )
    for title, group in _groups(rows):
        parts += ["", f"## {title}", ""]
        parts.append(_md_table(COLUMNS, [_row_cells(r, inproc) for r in group]))
    parts += ["", "## In-process ONNX Runtime (the limit)", ""]
    parts.append(
        _md_table(
            ["model", "batch", "spinning", "samples/s", "p50 ms per call"],
            [
                [
                    p.model,
                    str(p.batch),
                    "on" if p.spinning else "off",
                    f"{p.samples_per_s:,.0f}",
                    f"{p.p50_ms:.3f}",
                ]
                for p in inproc
            ],
        )
    )
    parts += ["", "## Notes", ""]
    parts += [f"- {note}" for note in notes]
    return "\n".join(parts) + "\n"
