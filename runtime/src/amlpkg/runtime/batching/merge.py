"""Merging requests into one batch and splitting the outputs back (numpy, worker thread)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from amlpkg.runtime.batching.types import BatchRecord, RunFn
from amlpkg.runtime.errors import InferenceFailedError

Signature = tuple[tuple[str, str, tuple[int, ...]], ...]


def signature(feeds: dict[str, np.ndarray]) -> Signature:
    """Requests batch together only with the same input names, dtypes and non-batch dims."""
    return tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in feeds.items()))


def union_outputs(requested: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """Every output any request of the batch asked for, in first-seen order."""
    seen: dict[str, None] = {}
    for names in requested:
        seen.update(dict.fromkeys(names))
    return tuple(seen)


def run_merged(
    run: RunFn,
    feeds: Sequence[dict[str, np.ndarray]],
    outputs: Sequence[tuple[str, ...]],
    sizes: Sequence[int],
    start_ns: int,
) -> tuple[list[dict[str, np.ndarray]], BatchRecord]:
    """Concatenate, run once, check every output's first dim, slice back per request."""
    total = sum(sizes)
    if len(feeds) == 1:
        merged = dict(feeds[0])
    else:
        merged = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
    names = union_outputs(outputs)
    infer_start = time.time_ns()
    arrays = run(merged, names)
    infer_end = time.time_ns()
    by_name = dict(zip(names, arrays, strict=True))
    for name, array in by_name.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise InferenceFailedError(
                f"output {name!r} has shape {list(array.shape)} but the batch had {total} "
                "samples; a batched model must keep the batch size as the first output dim",
                hint="set max_batch_size: 0 for this model or fix its output shape",
            )
    results: list[dict[str, np.ndarray]] = []
    offset = 0
    for size, wanted in zip(sizes, outputs, strict=True):
        results.append({n: by_name[n][offset : offset + size] for n in wanted})
        offset += size
    record = BatchRecord(total, start_ns, infer_start, infer_end, time.time_ns())
    return results, record
