"""Schedulers that hand requests to ONNX Runtime: one at a time, or dynamically batched.

Both expose ``submit(feeds, outputs, batch) -> ScheduledResult`` and ``close()``;
:class:`DynamicBatcher` merges concurrent requests along the first dim.
"""

from amlpkg.runtime.batching.direct import DirectScheduler
from amlpkg.runtime.batching.dynamic import DynamicBatcher
from amlpkg.runtime.batching.types import BatchRecord, RunFn, ScheduledResult, Scheduler

__all__ = [
    "BatchRecord",
    "DirectScheduler",
    "DynamicBatcher",
    "RunFn",
    "ScheduledResult",
    "Scheduler",
]
