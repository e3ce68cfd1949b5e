"""One MLflow client process of :mod:`benchmarks.control_plane_mlflow`.

Run by the MLflow venv's python as a plain script (it imports MLflow and the standard
library only, never ``benchmarks``): ``python control_plane_mlflow_worker.py MODE URL
EXPERIMENT_ID POINTS``. Same protocol as :mod:`benchmarks.control_plane_worker`:
``ready``, a line on stdin, then one JSON line.

- ``async``: ``mlflow.log_metric(..., synchronous=False)`` once per point (MLflow's
  batching background logger, the mode closest to our spool), then
  ``mlflow.flush_async_logging()`` and ``mlflow.end_run()``;
- ``sync``: ``mlflow.log_metric`` as MLflow logs by default: one request per point.
"""

from __future__ import annotations

import json
import sys
import time


def point_value(step: int) -> float:
    """Equal to ``benchmarks.control_plane_worker.point_value``."""
    return 1.0 / (1.0 + step)


def main(argv: list[str]) -> int:
    """Log ``POINTS`` values of ``loss`` in a new run; print the result line."""
    mode, url, experiment_id, points = argv[0], argv[1], argv[2], int(argv[3])
    import mlflow  # type: ignore[import-not-found]  # MLflow's venv, not ours

    mlflow.set_tracking_uri(url)
    run = mlflow.start_run(experiment_id=experiment_id)
    synchronous = mode == "sync"
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    for step in range(points):
        mlflow.log_metric("loss", point_value(step), step=step, synchronous=synchronous)
    if not synchronous:
        mlflow.flush_async_logging()
    mlflow.end_run()
    end = time.time()
    print(json.dumps({"runs": [run.info.run_id], "points": points, "start": start, "end": end}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
