"""What to measure against one started server, and measuring it.

A job is one row: a path (http, grpc, http+shm, grpc+shm), a client and a
concurrency. perf_analyzer jobs cover every path; the socket clients (wrk, the
grpc.aio client; opt-in) cover http and grpc. Every server answers one request per
socket protocol correctly before anything is measured against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.loadgen import LoadError, LoadResult, run_grpc, run_wrk
from benchmarks.models import BenchModel
from benchmarks.pa_load import run_perf_analyzer, split_path
from benchmarks.payloads import Payload, Wire, build_payload
from benchmarks.proc_cpu import CpuSampler
from benchmarks.servers import Endpoint, ServerDef, ServerStartError, serve
from benchmarks.targets import PA, Row
from benchmarks.verify import WrongAnswerError, check_answer


@dataclass(frozen=True)
class Settings:
    """The options of a run that shape its jobs."""

    paths: tuple[str, ...]  # http, grpc, http+shm, grpc+shm
    levels: tuple[int, ...]
    duration_s: float
    warmup_s: float
    perf_analyzer: bool
    socket_clients: tuple[str, ...] = ()  # "wrk" (HTTP) and/or "grpc.aio" (gRPC)


@dataclass(frozen=True)
class Job:
    """One measurement to make against a started server."""

    path: str
    client: str  # "perf_analyzer", "wrk" or "grpc.aio"
    wire: str
    level: int


def _pa_wire(path: str) -> str:
    protocol, shm = split_path(path)
    if shm:
        return "system-shm"
    return "v2-binary" if protocol == "http" else "grpc-raw"


def jobs_for(defn: ServerDef, model: BenchModel, settings: Settings) -> list[Job]:
    """Every row to measure for ``defn`` serving ``model``."""
    paths = [p for p in settings.paths if split_path(p)[0] == "http" or defn.grpc]
    if defn.only_paths:
        paths = [p for p in paths if p in defn.only_paths]
    jobs: list[Job] = []
    if settings.perf_analyzer and defn.v2_http:
        jobs += [Job(p, PA, _pa_wire(p), c) for p in paths for c in settings.levels]
    for path, client in (("http", "wrk"), ("grpc", "grpc.aio")):
        if path in paths and client in settings.socket_clients:
            wire = defn.http_wire(model) if path == "http" else Wire.GRPC_RAW
            jobs += [Job(path, client, str(wire), c) for c in settings.levels]
    return jobs


def _payload(defn: ServerDef, model: BenchModel, protocol: str) -> Payload:
    wire = defn.http_wire(model) if protocol == "http" else Wire.GRPC_RAW
    return build_payload(Wire(wire), model.name, model.sample(1))


def measure(
    job: Job, defn: ServerDef, endpoint: Endpoint, model: BenchModel, settings: Settings
) -> LoadResult:
    """Run one job; the server's CPU is sampled from /proc around socket-client runs."""
    target = endpoint.grpc_target or ""
    if job.client == PA:
        protocol, _ = split_path(job.path)
        url = endpoint.http_base.removeprefix("http://") if protocol == "http" else target
        return run_perf_analyzer(
            url, job.path, model.name, job.level, settings.duration_s, endpoint.pid
        )
    payload = _payload(defn, model, job.path)
    with CpuSampler(endpoint.pid) as sampler:
        if job.client == "wrk":
            result = run_wrk(
                endpoint.http_base, payload, job.level, settings.duration_s, settings.warmup_s
            )
        else:
            result = run_grpc(target, payload, job.level, settings.duration_s, settings.warmup_s)
    server_cpu, _ = sampler.cores()
    return replace(result, server_cpu=server_cpu)


def bench_server(
    defn: ServerDef,
    model: BenchModel,
    settings: Settings,
    workdir: Path,
    expected: np.ndarray,
    on_row: Callable[[Row, str], None],
) -> list[Row]:
    """Start ``defn`` with ``model``, check its answers, measure every job, stop it.

    ``on_row(row, next_description)`` is called after each row (progress display).
    """
    jobs = jobs_for(defn, model, settings)
    rows: list[Row] = []

    def record(job: Job, result: LoadResult | None, error: str = "") -> None:
        row = Row(defn.name, defn.category, job.path, job.wire, model.name, job.level, result)
        rows.append(replace(row, error=error, client=job.client))
        nxt = jobs[len(rows)] if len(rows) < len(jobs) else None
        label = f"{defn.name} {model.name} {nxt.path} {nxt.client} c{nxt.level}" if nxt else ""
        on_row(rows[-1], label)

    try:
        with serve(defn, model, workdir / defn.name / model.name) as endpoint:
            # A fast wrong answer is no result: check each socket protocol once first.
            failed: dict[str, str] = {}
            for protocol in sorted({split_path(j.path)[0] for j in jobs}):
                try:
                    payload = _payload(defn, model, protocol)
                    check_answer(payload, expected, endpoint.http_base, endpoint.grpc_target)
                except WrongAnswerError as exc:
                    failed[protocol] = f"answer check failed: {exc}"
            for job in jobs:
                why = failed.get(split_path(job.path)[0])
                if why:
                    record(job, None, why)
                    continue
                try:
                    record(job, measure(job, defn, endpoint, model, settings))
                except LoadError as exc:
                    record(job, None, str(exc))
    except ServerStartError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        why = " ".join(lines[:1] + lines[-1:]) if lines else "did not start"
        for job in jobs[len(rows) :]:
            record(job, None, f"server did not start: {why}")
    return rows
