"""The three measures of :mod:`benchmarks.control_plane_mlflow`, one side at a time.

Logging clients are separate processes (:mod:`benchmarks.control_plane_worker` in our
venv, ``control_plane_mlflow_worker.py`` in MLflow's): all start, import and make their
run first, then go at once; the wall time runs from the first start to the last end.
Search and registration are timed here, one call at a time, with one httpx client for
both servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import control_plane_bulk as bulk
from benchmarks import control_plane_report as cpr
from benchmarks import control_plane_servers as srv
from benchmarks.proc_cpu import all_stats, tree

MLFLOW_WORKER = Path(__file__).with_name("control_plane_mlflow_worker.py")
SEARCH_PAGE = 100
SEARCH_FILTER = "metrics.acc > 0.5"
CLIENT_TIMEOUT_S = 300.0
Argv = Callable[[str, str], list[str]]  # (server URL, experiment) -> one client's command


@dataclass(frozen=True)
class Plan:
    """How much each measure does."""

    clients: int = 16
    script_points: int = 200  # per client: one log_metric call each
    sync_points: int = 50  # per client, MLflow's synchronous log_metric
    rest_points: int = 2000  # per client, through the batch endpoint
    batch: int = 1000  # points per REST request (MLflow's largest)
    runs: int = 10_000  # in the searched experiment
    queries: int = 100
    registrations: int = 100


@dataclass
class Context:
    """What the measures share: the plan, the servers, where client logs go."""

    plan: Plan
    workdir: Path
    mlflow_python: Path | None
    servers: dict[str, srv.Server]
    lost: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    first_page: dict[str, list[str]] = field(default_factory=dict)  # run names searched
    seed_seconds: dict[str, float] = field(default_factory=dict)

    def env(self, side: str) -> dict[str, str]:
        """The clients' environment (our token travels here, never in argv)."""
        cache = str(self.workdir / "client-cache")  # the script API's spools
        return {"AMLPKG_TRACKING_TOKEN": self.servers[side].token, "XDG_CACHE_HOME": cache}


def launch(argvs: list[list[str]], env: dict[str, str], log: Path) -> list[dict[str, Any]]:
    """Start every client, wait until all are ready, let them go at once; their results."""
    log.parent.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[str]] = []
    with log.open("a") as err:
        try:
            for argv in argvs:
                procs.append(
                    subprocess.Popen(
                        argv,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                        env={**os.environ, **env},
                    )
                )
            for proc in procs:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    proc.wait(30)
                    raise RuntimeError(f"a client exited with {proc.returncode}; see {log}")
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            results = []
            for proc in procs:
                out, _ = proc.communicate(timeout=CLIENT_TIMEOUT_S)
                if proc.returncode != 0:
                    raise RuntimeError(f"a client exited with {proc.returncode}; see {log}")
                results.append(json.loads(out.strip().splitlines()[-1]))
            return results
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def cpu_seconds(pid: int) -> float:
    """CPU seconds so far of the process tree rooted at ``pid`` (a server)."""
    stats = all_stats()
    members = tree(pid, stats)
    return sum(s.cpu_s for s in stats if s.pid in members)


def ours(mode: str, side: str, **options: int) -> Argv:
    """A client of :mod:`benchmarks.control_plane_worker`."""

    def argv(url: str, experiment: str) -> list[str]:
        line = [sys.executable, "-m", "benchmarks.control_plane_worker", mode, "--side", side]
        line += ["--url", url, "--experiment", experiment]
        for key, value in options.items():
            line += [f"--{key}", str(value)]
        return line

    return argv


def mlflow_client(python: Path | None, mode: str, points: int) -> Argv:
    """A client of ``control_plane_mlflow_worker.py`` in MLflow's venv."""
    return lambda url, exp: [str(python), str(MLFLOW_WORKER), mode, url, exp, str(points)]


def mlflow_experiment(url: str, name: str) -> str:
    """The id of a new MLflow experiment ``name``."""
    response = httpx.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=120
    )
    response.raise_for_status()
    return str(response.json()["experiment_id"])


def stored_points(server: srv.Server, runs: list[str]) -> int:
    """Metric rows of ``runs`` in the server's own database."""
    column = "run_id" if server.name == "amlpkg" else "run_uuid"
    sql = f"SELECT count(*) FROM metrics WHERE {column} = ANY(%s)"
    return srv.count_rows(server.database, sql, (runs,))


def log_once(
    ctx: Context, side: str, variant: str, argv: Argv
) -> tuple[cpr.LogResult, float] | None:
    """``plan.clients`` copies of ``argv`` logging at once on ``side``.

    The result and the server's CPU milliseconds per point stored; None (and the
    reason in ``ctx.failed``) when a client failed or ran past ``CLIENT_TIMEOUT_S``.
    """
    server = ctx.servers[side]
    experiment = f"log-{variant}"
    if side == "mlflow":
        experiment = mlflow_experiment(server.url, experiment)
    argvs = [argv(server.url, experiment)] * ctx.plan.clients
    before = cpu_seconds(server.pid)
    try:
        results = launch(argvs, ctx.env(side), ctx.workdir / "clients.log")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        ctx.failed[f"{side} {variant}"] = str(exc)[:300]
        return None
    cpu = cpu_seconds(server.pid) - before
    runs = [r for result in results for r in result["runs"]]
    sent = sum(int(r["points"]) for r in results)
    stored = stored_points(server, runs)
    outcome = cpr.LogResult(sent, stored, cpr.wall_seconds(results), len(results))
    if outcome.lost:
        ctx.lost[f"{side} {variant}"] = outcome.lost
    return outcome, 1000 * cpu / max(stored, 1)


def variants(ctx: Context) -> list[tuple[str, str, Argv]]:
    """``(side, variant, client)`` of measure 1 for the sides that run."""
    plan = ctx.plan
    rest = {"points": plan.rest_points, "batch": plan.batch}
    found = [
        ("amlpkg", "script", ours("script", "amlpkg", points=plan.script_points)),
        ("mlflow", "async", mlflow_client(ctx.mlflow_python, "async", plan.script_points)),
        ("amlpkg", "rest", ours("rest", "amlpkg", **rest)),
        ("mlflow", "rest", ours("rest", "mlflow", **rest)),
        ("mlflow", "sync", mlflow_client(ctx.mlflow_python, "sync", plan.sync_points)),
    ]
    return [v for v in found if v[0] in ctx.servers]


def seed(ctx: Context, side: str, experiment: str) -> None:
    """``plan.runs`` runs into ``experiment`` in bulk (not measured; see control_plane_bulk)."""
    server = ctx.servers[side]
    ctx.seed_seconds[side] = bulk.seed(side, server.database, experiment, ctx.plan.runs)


def timed_turns(
    calls: Mapping[str, Callable[[], object]], count: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Milliseconds of ``count`` calls per side, the sides taking turns call by call.

    Other work on the machine then weighs on both sides alike (on a shared machine a
    burst of load lands on whichever side runs at the time); the order flips every
    round, so neither always follows the other. ``warmup`` untimed calls each first.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {side: [] for side in calls}
    order = list(calls)
    for _ in range(count):
        for side in order:
            started = time.perf_counter()
            calls[side]()
            samples[side].append(1000 * (time.perf_counter() - started))
        order.reverse()
    return samples


def _checked(response: httpx.Response) -> Any:
    if response.is_error:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    return response.json()


def our_search_params(openapi: dict[str, Any]) -> dict[str, Any]:
    """The query of ``GET /api/v1/runs``: a page of runs, sorted/filtered where it can.

    Reads the route's parameters from ``/openapi.json``, so a server that learned to sort
    and filter is asked to (the same question MLflow gets), and one that did not is asked
    for its newest page.
    """
    get = openapi.get("paths", {}).get("/api/v1/runs", {}).get("get", {})
    names = {p.get("name") for p in get.get("parameters", [])}
    params: dict[str, Any] = {"limit": SEARCH_PAGE}
    if "q" in names:
        params["q"] = SEARCH_FILTER
    if "sort" in names:
        params["sort"] = "metrics.acc"
        if "order" in names:
            params["order"] = "desc"
    return params


def search_call(ctx: Context, side: str, http: httpx.Client) -> tuple[Callable[[], None], str]:
    """Measure 2's call on ``side`` (a first page of the seeded experiment), and its text."""
    server = ctx.servers[side]
    name = "search"
    if side == "amlpkg":
        _checked(http.post("/api/v1/experiments", json={"name": name}))
        seed(ctx, side, name)
        params = {"experiment": name, **our_search_params(_checked(http.get("/openapi.json")))}

        def ours() -> None:
            page = _checked(http.get("/api/v1/runs", params=params))
            ctx.first_page[side] = [run["name"] for run in page]

        return ours, "GET /api/v1/runs?" + "&".join(f"{k}={v}" for k, v in params.items())
    experiment = mlflow_experiment(server.url, name)
    seed(ctx, side, experiment)
    body = {
        "experiment_ids": [experiment],
        "filter": SEARCH_FILTER,
        "order_by": ["metrics.acc DESC"],
        "max_results": SEARCH_PAGE,
    }

    def theirs() -> None:
        runs = _checked(http.post("/api/2.0/mlflow/runs/search", json=body))["runs"]
        ctx.first_page[side] = [run["info"]["run_name"] for run in runs]

    return theirs, f"POST runs/search {json.dumps(body)}"


def onnx_model() -> bytes:
    """A valid one-node ONNX model (Relu), the artifact our registry validates."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return bytes(model.SerializeToString())


def register_call(ctx: Context, side: str, http: httpx.Client) -> Callable[[], None]:
    """Measure 3's call on ``side``: register one run's model artifact as the next version."""
    import hashlib

    if side == "amlpkg":
        run = _checked(http.post("/api/v1/runs", json={"experiment": "registry"}))["id"]
        model = onnx_model()
        digest = hashlib.sha256(model).hexdigest()
        path = f"/api/v1/runs/{run}/artifacts/model.onnx"
        _checked(http.put(path, params={"sha256": digest}, content=model))
        body = {"source": f"runs:/{run}/model.onnx"}
        return lambda: _checked(http.post("/api/v1/models/bench/versions", json=body))
    api = "/api/2.0/mlflow"
    experiment = mlflow_experiment(ctx.servers[side].url, "registry")
    made = _checked(http.post(f"{api}/runs/create", json={"experiment_id": experiment}))
    run = made["run"]["info"]["run_id"]
    _checked(http.post(f"{api}/registered-models/create", json={"name": "bench"}))
    mlflow_body = {"name": "bench", "source": f"runs:/{run}/model", "run_id": run}
    return lambda: _checked(http.post(f"{api}/model-versions/create", json=mlflow_body))


def client(server: srv.Server) -> httpx.Client:
    """An httpx client of ``server`` (with our token on our side)."""
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120)
