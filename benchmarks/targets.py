"""The targets of issue 11, checked against one run's perf_analyzer rows.

* CNN c16: ours >= 0.75x in-process ONNX Runtime's best batched samples/s over HTTP
  and over system shared memory (the better of its HTTP and gRPC control paths),
  >= 0.6x over gRPC;
* MLP c16: ours over gRPC >= 0.8x ours over HTTP;
* concurrency 1: ours has the lowest p50 of all servers, per model and path;
* CNN c16 over HTTP: our server's process tree uses >= 1.6 cores.

Only perf_analyzer rows count: it is the client Triton's users run, and the same
client for every server. A side not measured makes a target NOT MEASURED, never MET.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from benchmarks.inprocess import InProcessResult, best_throughput, cheapest_sample, usable_cpus
from benchmarks.loadgen import LoadResult

OURS = "amlpkg"
PA = "perf_analyzer"
PATHS = ("http", "grpc", "http+shm", "grpc+shm")


@dataclass(frozen=True)
class Row:
    """One (server, path, model, concurrency) measurement, or why it has none."""

    server: str
    category: str  # "ours", "python", "triton" or "reference" (a floor, not a peer)
    protocol: str  # "http", "grpc", "http+shm" or "grpc+shm" (tensors in system shm)
    wire: str
    model: str
    concurrency: int
    result: LoadResult | None
    error: str = ""
    client: str = ""  # "perf_analyzer", "wrk" or "grpc.aio"


@dataclass(frozen=True)
class Target:
    """One target checked: what was compared, the ratio, and whether it is met."""

    goal: str
    protocol: str
    detail: str
    ratio: float | None
    required: float
    met: bool | None  # None: a side of the comparison was not measured
    # The most any server could reach here, on the target's own scale, worked out from
    # this run (the CNN: ORT's CPU per sample and the client's per request on these
    # cores; the cores: what the client leaves; MLP gRPC: bare grpcio over our HTTP).
    ceiling: float | None = None


def ok(row: Row) -> bool:
    """Whether ``row`` has a usable measurement."""
    return row.result is not None and row.result.requests > 0 and not row.error


def find(rows: list[Row], server: str, model: str, path: str, conc: int) -> Row | None:
    """The measured perf_analyzer row for (server, model, path, concurrency), if any."""
    for row in rows:
        key = (row.server, row.model, row.protocol, row.concurrency, row.client)
        if key == (server, model, path, conc, PA) and ok(row):
            return row
    return None


def _rps(row: Row | None) -> float | None:
    return row.result.req_per_s if row is not None and row.result is not None else None


def fmt(value: float | None) -> str:
    """A count with thousands separators, or n/a."""
    return "n/a" if value is None or math.isnan(value) else f"{value:,.0f}"


def _target(
    goal: str,
    path: str,
    detail: str,
    ratio: float | None,
    need: float,
    ceiling: float | None = None,
) -> Target:
    met = None if ratio is None else ratio >= need
    return Target(goal, path, detail, ratio, need, met, ceiling)


def client_us_per_request(row: Row | None) -> float | None:
    """The client's CPU (us) per answered request at ``row``'s point."""
    if row is None or row.result is None or not row.result.req_per_s:
        return None
    return row.result.client_cpu / row.result.req_per_s * 1e6


def free_server_ceiling(
    ort_us: float | None, client_us: float | None, limit: InProcessResult | None
) -> float | None:
    """The ratio to in-process ORT that a server costing no CPU at all could reach: the
    cores here / (ORT's CPU per sample + the client's per request). The client runs on the
    same cores, so a target above it is out of reach for any server."""
    if client_us is None or ort_us is None or limit is None:
        return None
    return usable_cpus() * 1e6 / (ort_us + client_us) / limit.samples_per_s


def _vs_inprocess(
    rows: list[Row],
    inproc: list[InProcessResult],
    path: str,
    need: float,
    ours: str = OURS,
) -> Target:
    limit = best_throughput(inproc, "cnn")
    row = find(rows, ours, "cnn", path, 16)
    rps = _rps(row)
    ratio = rps / limit.samples_per_s if rps is not None and limit else None
    where = f" (batch {limit.batch}, spin {'on' if limit.spinning else 'off'})" if limit else ""
    detail = (
        f"ours {fmt(rps)} req/s vs in-process "
        f"{fmt(limit.samples_per_s if limit else None)} samples/s{where}"
    )
    ort_us, client_us = cheapest_sample(inproc, "cnn"), client_us_per_request(row)
    ceiling = free_server_ceiling(ort_us, client_us, limit)
    if ceiling is not None:
        detail += (
            f"; ORT {ort_us:.0f} us CPU/sample + perf_analyzer {client_us:.0f} us/request"
            f" on {usable_cpus()} cores"
        )
    return _target(f"CNN c16 >= {need:g}x in-process ORT", path, detail, ratio, need, ceiling)


def _shm_vs_inprocess(rows: list[Row], inproc: list[InProcessResult], ours: str) -> Target:
    # "Over shared memory": the better of the two control paths counts; both are shown.
    shm = [t for t in (_vs_inprocess(rows, inproc, p, 0.75, ours) for p in PATHS[2:]) if t.ratio]
    best = max(shm, key=lambda t: t.ratio or 0.0, default=None)
    if best is None:
        return _target("CNN c16 >= 0.75x in-process ORT", "shm", "not measured", None, 0.75)
    detail = f"{best.protocol}: {best.detail}" + "".join(
        f"; {t.protocol}: {t.ratio:.2f}x" for t in shm if t is not best and t.ratio
    )
    return _target(best.goal, "shm", detail, best.ratio, 0.75, best.ceiling)


def lowest_p50(rows: list[Row], model: str, path: str, server: str = OURS) -> Target:
    """Ours against the other server with the lowest p50 at concurrency 1."""
    ours = find(rows, server, model, path, 1)
    servers = sorted({r.server for r in rows if r.category not in ("ours", "reference")})
    found = [find(rows, server, model, path, 1) for server in servers]
    measured = [r for r in found if r is not None and r.result is not None]
    best = min(measured, key=lambda r: r.result.p50_ms if r.result else math.inf, default=None)
    goal = f"{model.upper()} c1 lowest p50 of all"
    if ours is None or ours.result is None or best is None or best.result is None:
        return _target(goal, path, "not measured on both sides", None, 1.0)
    ratio = best.result.p50_ms / ours.result.p50_ms
    detail = f"ours {ours.result.p50_ms:.2f} ms vs {best.server} {best.result.p50_ms:.2f} ms"
    return _target(goal, path, detail, ratio, 1.0)


def check_targets(rows: list[Row], inproc: list[InProcessResult], ours: str = OURS) -> list[Target]:
    """Every target of issue 11 from this run's perf_analyzer rows, for the configuration
    of our server named ``ours`` (its goals are prefixed with the name unless default)."""
    targets = _targets(rows, inproc, ours)
    if ours == OURS:
        return targets
    return [dataclasses.replace(t, goal=f"{ours}: {t.goal}") for t in targets]


def _targets(rows: list[Row], inproc: list[InProcessResult], ours: str) -> list[Target]:
    targets = [
        _vs_inprocess(rows, inproc, "http", 0.75, ours),
        _shm_vs_inprocess(rows, inproc, ours),
        _vs_inprocess(rows, inproc, "grpc", 0.6, ours),
    ]
    http, grpc = (_rps(find(rows, ours, "mlp", p, 16)) for p in ("http", "grpc"))
    ratio = grpc / http if grpc is not None and http else None
    detail = f"gRPC {fmt(grpc)} req/s vs HTTP {fmt(http)} req/s"
    floors = {r.server for r in rows if r.category == "reference"}
    measured = [f for f in (find(rows, s, "mlp", "grpc", 16) for s in floors) if f is not None]
    floor = max(measured, key=lambda r: _rps(r) or 0.0, default=None)
    floor_rps = _rps(floor)
    ceiling = floor_rps / http if floor_rps is not None and http else None
    if floor is not None:
        detail += f"; bare grpcio ({floor.server}, ORT inline) {fmt(floor_rps)} req/s"
    targets.append(_target("MLP c16 gRPC >= 0.8x HTTP", "grpc", detail, ratio, 0.8, ceiling))
    targets += [lowest_p50(rows, model, path, ours) for model in ("mlp", "cnn") for path in PATHS]
    cnn = find(rows, ours, "cnn", "http", 16)
    cores = cnn.result.server_cpu if cnn is not None and cnn.result is not None else None
    client = cnn.result.client_cpu if cnn is not None and cnn.result is not None else None
    detail = (
        "not measured"
        if cores is None
        else f"server {cores:.2f} cores, perf_analyzer {client or math.nan:.2f} cores"
    )
    left = usable_cpus() - client if client is not None else None
    targets.append(_target("server >= 1.6 cores at CNN c16", "http", detail, cores, 1.6, left))
    return targets


def verdict(target: Target) -> str:
    """MET, NOT MET or NOT MEASURED."""
    if target.met is None:
        return "NOT MEASURED"
    return "MET" if target.met else "NOT MET"


def ratio_text(target: Target) -> str:
    """The ratio cell (cores for the CPU target)."""
    if target.ratio is None:
        return "-"
    return _scaled(target, target.ratio)


def _scaled(target: Target, value: float) -> str:
    return f"{value:.2f}" if "cores" in target.goal else f"{value:.2f}x"


def ceiling_text(target: Target) -> str:
    """The ceiling cell: the most any server could reach here ("-" where not worked out)."""
    return "-" if target.ceiling is None else _scaled(target, target.ceiling)
