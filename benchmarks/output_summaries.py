"""Per-request cost of the runtime's output summaries (``--output-summaries``).

``python -m benchmarks.output_summaries`` (about 15 s) prints two tables:

1. the cost of counting one response (:meth:`OutputSummaries.count`: row summaries,
   bins, one counter increment per bin) for output shapes from one value to a batch of
   32 rows of 1,000 classes;
2. the in-process data plane on the benchmark MLP (batch 1, one request at a time, no
   transport), summaries off and on, in alternating rounds so other load on the machine
   weighs on both alike: the extra microseconds per request and the share of the
   request's time they are.

Off, the data plane checks one attribute per request (``output_summaries is None``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.summaries import OutputSummaries
from amlpkg.runtime.types import InferInput, InferOutput, InferRequest, InferResponse
from benchmarks.models import INPUT_NAME, build_mlp, write_repository

SHAPES = {
    "1 value": (1, 1),
    "1x10 probabilities": (1, 10),
    "1x10 scores": (1, 10),
    "8x10 scores": (8, 10),
    "32x1000 scores": (32, 1000),
}


def _output(label: str, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = rng.random(shape, dtype=np.float32)
    if "probabilities" in label:
        data /= data.sum(axis=1, keepdims=True)
    return data


def count_cost(repeats: int) -> list[tuple[str, float]]:
    """Microseconds per :meth:`OutputSummaries.count` call, per output shape."""
    summaries = OutputSummaries(CollectorRegistry())
    rows = []
    for label, shape in SHAPES.items():
        out = InferOutput("output", "FP32", shape, _output(label, shape))
        response = InferResponse("m", "1", [out])
        summaries.count(None, response)  # warm the label children
        start = time.perf_counter()
        for _ in range(repeats):
            summaries.count(None, response)
        rows.append((label, (time.perf_counter() - start) / repeats * 1e6))
    return rows


async def _infer_loop(dp: DataPlane, n: int) -> float:
    x = np.random.default_rng(1).random((1, 64), dtype=np.float32)
    request = InferRequest("mlp", None, [InferInput(INPUT_NAME, "FP32", (1, 64), x)])
    start = time.perf_counter()
    for _ in range(n):
        await dp.infer(request)
    return (time.perf_counter() - start) / n * 1e6


async def dataplane_cost(repo: Path, rounds: int, n: int) -> tuple[float, float]:
    """Median microseconds per request, summaries off and on (alternating rounds)."""
    planes = {
        on: DataPlane.from_repository(repo, environ={}, output_summaries=on) for on in (False, True)
    }
    for dp in planes.values():
        await dp.start()
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for dp in planes.values():
            await _infer_loop(dp, n // 4)  # warm up
        for i in range(rounds):
            for on in (False, True) if i % 2 == 0 else (True, False):
                times[on].append(await _infer_loop(planes[on], n))
    finally:
        for dp in planes.values():
            await dp.stop()
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.output_summaries")
    parser.add_argument("--repeats", type=int, default=2000, help="count() calls per shape")
    parser.add_argument("--rounds", type=int, default=6, help="alternating data plane rounds")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    args = parser.parse_args()
    print("OutputSummaries.count, one response:")
    for label, us in count_cost(args.repeats):
        print(f"  {label:<20} {us:8.1f} us")
    with tempfile.TemporaryDirectory() as tmp:
        repo = write_repository(Path(tmp), [build_mlp()], max_queue_delay_us=0)
        off, on = asyncio.run(dataplane_cost(repo, args.rounds, args.requests))
    print("data plane, MLP batch 1, in process (median of rounds):")
    print(f"  off {off:8.1f} us/request")
    print(f"  on  {on:8.1f} us/request  (+{on - off:.1f} us, {100 * (on - off) / off:+.1f}%)")


if __name__ == "__main__":
    main()
