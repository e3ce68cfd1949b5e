"""A closed-loop gRPC load client, run in its own process by :mod:`benchmarks.loadgen`.

``N`` coroutines on one ``grpc.aio`` channel each send a pre-serialized
``ModelInferRequest`` and wait for the answer before sending the next. Bodies go
out as bytes and answers come back as bytes (no protobuf work in the loop), so the
client costs as little CPU as Python allows; the CPU it took is reported.

Prints one JSON line: requests, errors, seconds, p50/p99 latency (ms), client CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path

import grpc
import numpy as np

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _worker(
    call: grpc.aio.UnaryUnaryMultiCallable,
    body: bytes,
    measure_from: float,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    while True:
        t0 = time.perf_counter()
        if t0 >= stop_at:
            return
        try:
            await call(body, timeout=30)
        except grpc.aio.AioRpcError as exc:
            if t0 >= measure_from:
                errors.append(f"{exc.code().name}: {exc.details()}")
            continue
        if t0 >= measure_from:
            latencies.append(time.perf_counter() - t0)


async def run_load(
    target: str, body: bytes, concurrency: int, duration_s: float, warmup_s: float
) -> dict[str, object]:
    """Drive ``target`` for ``warmup_s + duration_s`` seconds; measure the last part."""
    async with grpc.aio.insecure_channel(target) as channel:
        # No (de)serializers: bytes in, bytes out.
        call = channel.unary_unary(INFER_METHOD)
        # Connect first: fail early (and outside the measured time) if nobody listens.
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        start = time.perf_counter()
        measure_from = start + warmup_s
        stop_at = measure_from + duration_s
        latencies: list[float] = []
        errors: list[str] = []
        tasks = [
            asyncio.create_task(_worker(call, body, measure_from, stop_at, latencies, errors))
            for _ in range(concurrency)
        ]
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        await asyncio.gather(*tasks)
        cpu1, wall1 = _cpu_seconds(), time.perf_counter()
    lat_ms = np.asarray(latencies) * 1e3
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "seconds": wall1 - wall0,
        "p50_ms": float(np.percentile(lat_ms, 50)) if len(lat_ms) else float("nan"),
        "p99_ms": float(np.percentile(lat_ms, 99)) if len(lat_ms) else float("nan"),
        "client_cpu": (cpu1 - cpu0) / max(wall1 - wall0, 1e-9),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.grpc_load --target H:P --body FILE -c N -d S -w S``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--body", required=True, type=Path)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-w", "--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = asyncio.run(
        run_load(args.target, args.body.read_bytes(), args.concurrency, args.duration, args.warmup)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
