"""In-process ONNX Runtime: the limit a server on this machine can approach.

A closed loop of ``session.run`` at batch 1, 8 and 32, bounded in time, with
spin-waiting off and on, and ``intra_op_num_threads`` = the CPUs this process may
run on: ORT's default (0) picks a pool from the machine's cores, which on a
container with a CPU affinity mask is slower than the mask's count (measured here:
~16k against ~21k samples/s for the CNN at batch 32). The best point is the limit.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from benchmarks.models import INPUT_NAME, BenchModel

BATCH_SIZES = (1, 8, 32)


@dataclass(frozen=True)
class InProcessResult:
    """Throughput of one (model, batch, spinning) point."""

    model: str
    batch: int
    spinning: bool
    samples_per_s: float
    p50_ms: float
    calls: int
    threads: int = 0  # intra_op_num_threads (0: ORT's default)
    cpu_s: float = 0.0  # this process's CPU seconds (user + sys) over the measured loop

    @property
    def cpu_us_per_sample(self) -> float | None:
        """ONNX Runtime's CPU cost of one sample at this point (spinning included)."""
        samples = self.calls * self.batch
        return self.cpu_s / samples * 1e6 if samples and self.cpu_s > 0 else None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), not the machine's count."""
    return len(os.sched_getaffinity(0))


def make_session(
    model: BenchModel, spinning: bool = False, threads: int = 0
) -> ort.InferenceSession:
    """A CPU session with spin-waiting switched as asked and ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    flag = "1" if spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", flag)
    options.add_session_config_entry("session.inter_op.allow_spinning", flag)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        model.proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def measure(
    session: ort.InferenceSession,
    model: BenchModel,
    batch: int,
    duration_s: float,
    spinning: bool,
    max_calls: int = 1_000_000,
    threads: int = 0,
) -> InProcessResult:
    """Run ``session`` in a closed loop for ``duration_s`` (after a short warm-up)."""
    feed = {INPUT_NAME: model.sample(batch)}
    for _ in range(5):
        session.run(None, feed)
    latencies: list[float] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + duration_s
    while len(latencies) < max_calls:
        t0 = time.perf_counter()
        session.run(None, feed)
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    wall = time.perf_counter() - start
    cpu_s = time.process_time() - cpu0
    return InProcessResult(
        model=model.name,
        batch=batch,
        spinning=spinning,
        samples_per_s=len(latencies) * batch / wall,
        p50_ms=float(np.percentile(latencies, 50)) * 1e3,
        calls=len(latencies),
        threads=threads,
        cpu_s=cpu_s,
    )


def run_inprocess(
    models: list[BenchModel],
    duration_s: float,
    batches: tuple[int, ...] = BATCH_SIZES,
    spinning_modes: tuple[bool, ...] = (False, True),
) -> list[InProcessResult]:
    """Every (model, spinning, batch) point, one session per (model, spinning), with as
    many intra-op threads as this process has CPUs."""
    threads = usable_cpus()
    results: list[InProcessResult] = []
    for model in models:
        for spinning in spinning_modes:
            session = make_session(model, spinning, threads)
            for batch in batches:
                results.append(
                    measure(session, model, batch, duration_s, spinning, threads=threads)
                )
    return results


def best_throughput(results: list[InProcessResult], model: str) -> InProcessResult | None:
    """The point with the most samples/s for ``model`` (any batch, any spinning)."""
    mine = [r for r in results if r.model == model]
    return max(mine, key=lambda r: r.samples_per_s) if mine else None


def cheapest_sample(results: list[InProcessResult], model: str) -> float | None:
    """The least CPU (us) ONNX Runtime spent on one sample of ``model`` at any point:
    what serving it costs any server, before its own work."""
    costs = [r.cpu_us_per_sample for r in results if r.model == model]
    known = [c for c in costs if c is not None]
    return min(known) if known else None
