"""One client process of :mod:`benchmarks.control_plane_mlflow` (runs in our venv).

``python -m benchmarks.control_plane_worker MODE --side SIDE --url URL ...``; the token of
our server comes in ``AMLPKG_TRACKING_TOKEN``, never on the command line. Every mode
prepares first (imports, its run), prints ``ready``, waits for a line on stdin, works,
and prints one JSON line: ``{"runs": [...], "points": N, "start": T, "end": T}``.

- ``script``: our script API as a training loop uses it: ``amlpkg.log_metric`` once per
  point (spooled, sent in batches by a background thread), then ``amlpkg.end_run()``,
  which returns once the server has stored everything.
- ``rest``: the raw REST batch endpoint of either server, ``--batch`` points per request,
  one httpx client for both sides, so only the servers differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

import httpx

MLFLOW_API = "/api/2.0/mlflow"
OUR_API = "/api/v1"
METRIC = "loss"


def point_value(step: int) -> float:
    """The value logged at ``step`` (distinct per step, so no store can merge two points)."""
    return 1.0 / (1.0 + step)


def acc_value(index: int) -> float:
    """The seeded run ``index``'s final ``acc``: uniform in [0, 1), the same on both sides."""
    return random.Random(index).random()


class Side:
    """One server's REST API: make a run, log a batch of points."""

    def __init__(self, side: str, url: str, experiment: str) -> None:
        self.side = side
        self.experiment = experiment  # MLflow: the experiment id; ours: its name
        token = os.environ.get("AMLPKG_TRACKING_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if side == "amlpkg" else {}
        base = url + (OUR_API if side == "amlpkg" else MLFLOW_API)
        self.http = httpx.Client(base_url=base, headers=headers, timeout=120)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.is_error:
            raise RuntimeError(f"{self.side} {path}: {response.status_code} {response.text[:300]}")
        return dict(response.json())

    def create_run(self, name: str | None = None) -> str:
        """A new run in the experiment; its id."""
        if self.side == "amlpkg":
            return str(self._post("/runs", {"experiment": self.experiment, "name": name})["id"])
        body: dict[str, Any] = {"experiment_id": self.experiment, "start_time": _ms()}
        if name:
            body["run_name"] = name
        return str(self._post("/runs/create", body)["run"]["info"]["run_id"])

    def log_points(self, run_id: str, key: str, steps: range) -> None:
        """One batch request with a value of ``key`` per step."""
        if self.side == "amlpkg":
            metrics = [{"key": key, "value": point_value(s), "step": s} for s in steps]
            self._post(f"/runs/{run_id}/log-batch", {"metrics": metrics})
            return
        now = _ms()
        rows = [{"key": key, "value": point_value(s), "timestamp": now, "step": s} for s in steps]
        self._post("/runs/log-batch", {"run_id": run_id, "metrics": rows})


def _ms() -> int:
    return int(time.time() * 1000)


def _wait_for_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def run_script(url: str, experiment: str, points: int) -> dict[str, Any]:
    """Our script API: one ``log_metric`` per point, then ``end_run`` (everything flushed)."""
    os.environ["AMLPKG_TRACKING_URI"] = url
    import amlpkg

    run = amlpkg.start_run(experiment)
    _wait_for_go()
    start = time.time()
    for step in range(points):
        amlpkg.log_metric(METRIC, point_value(step), step=step)
    amlpkg.end_run()
    return {"runs": [run.id], "points": points, "start": start, "end": time.time()}


def run_rest(side: Side, points: int, batch: int) -> dict[str, Any]:
    """The raw batch endpoint: ``points`` values of one key, ``batch`` per request."""
    run_id = side.create_run()
    _wait_for_go()
    start = time.time()
    for first in range(0, points, batch):
        side.log_points(run_id, METRIC, range(first, min(points, first + batch)))
    return {"runs": [run_id], "points": points, "start": start, "end": time.time()}


def main(argv: list[str] | None = None) -> int:
    """Parse, work, print the result line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control_plane_worker")
    parser.add_argument("mode", choices=["script", "rest"])
    parser.add_argument("--side", choices=["amlpkg", "mlflow"], default="amlpkg")
    parser.add_argument("--url", required=True)
    parser.add_argument("--experiment", required=True, help="MLflow: id; ours: name")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.mode == "script":
        result = run_script(args.url, args.experiment, args.points)
    else:
        result = run_rest(Side(args.side, args.url, args.experiment), args.points, args.batch)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
