"""No batching: each request runs alone on the model's worker threads."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

import numpy as np

from amlpkg.runtime.batching.types import BatchCallback, BatchRecord, RunFn, ScheduledResult


class DirectScheduler:
    """Runs every request as its own ONNX Runtime call, off the event loop."""

    def __init__(self, run: RunFn, executor: Executor, on_batch: BatchCallback) -> None:
        self._run = run
        self._executor = executor
        self._on_batch = on_batch

    async def submit(
        self, feeds: dict[str, np.ndarray], outputs: tuple[str, ...], batch: int
    ) -> ScheduledResult:
        """Run one request in the worker pool and return its outputs."""
        arrival = time.time_ns()
        loop = asyncio.get_running_loop()
        results, record = await loop.run_in_executor(
            self._executor, self._run_one, feeds, outputs, batch
        )
        self._on_batch(record)
        return ScheduledResult(results, arrival, record)

    def _run_one(
        self, feeds: dict[str, np.ndarray], outputs: tuple[str, ...], batch: int
    ) -> tuple[dict[str, np.ndarray], BatchRecord]:
        # Queueing ends when a worker thread picks the request up.
        infer_start = time.time_ns()
        arrays = self._run(dict(feeds), outputs)
        infer_end = time.time_ns()
        record = BatchRecord(batch, infer_start, infer_start, infer_end, infer_end)
        return dict(zip(outputs, arrays, strict=True)), record

    async def close(self) -> None:
        """Nothing is queued here; the worker pool is shut down by its owner."""
