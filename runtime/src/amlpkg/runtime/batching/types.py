"""Types shared by the schedulers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# The session call: (feeds, output names) -> arrays in the order of the names.
RunFn = Callable[[dict[str, np.ndarray], Sequence[str]], list[np.ndarray]]


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """Wall-clock stamps (``time.time_ns``) of one ONNX Runtime run and its size in samples."""

    batch_size: int
    start_ns: int  # dispatched: the end of queueing
    infer_start_ns: int  # inputs merged, ORT run begins
    infer_end_ns: int  # ORT run returned
    end_ns: int  # outputs checked and split

    @property
    def compute_input_ns(self) -> int:
        """Merging inputs (and handing them to the worker thread)."""
        return self.infer_start_ns - self.start_ns

    @property
    def compute_infer_ns(self) -> int:
        """The ONNX Runtime run itself."""
        return self.infer_end_ns - self.infer_start_ns

    @property
    def compute_output_ns(self) -> int:
        """Checking and splitting the outputs."""
        return self.end_ns - self.infer_end_ns


@dataclass(frozen=True, slots=True)
class ScheduledResult:
    """What one request gets back: its own outputs and the run it was part of."""

    outputs: dict[str, np.ndarray]
    arrival_ns: int
    batch: BatchRecord

    @property
    def queue_ns(self) -> int:
        """Time from submit until its batch was dispatched."""
        return max(0, self.batch.start_ns - self.arrival_ns)


BatchCallback = Callable[[BatchRecord], None]


class Scheduler(Protocol):
    """Runs requests for one model version."""

    async def submit(
        self, feeds: dict[str, np.ndarray], outputs: tuple[str, ...], batch: int
    ) -> ScheduledResult:
        """Run one request (``batch`` samples) and return the outputs it asked for."""
        ...

    async def close(self) -> None:
        """Refuse queued work and wait for running batches."""
        ...
