"""Turn the runtime's Prometheus metrics into one telemetry record per interval.

Everything is read from the runtime's metrics (the in-process data plane's registry,
or a scoring module's ``/metrics`` parsed) as deltas since the previous
sample: request and failure counters, and the queue and compute histograms
(mean latency = queue + compute time per request; percentiles of compute time by
bucket interpolation, so as fine as its buckets), and the served version's output
summaries per bin (``outputs``, see :mod:`amlpkg.runtime.summaries`; absent when the
scoring server does not count them: run a ``--scoring-url`` module with
``--output-summaries``). Series outlive an unloaded model
version, so the requests served just before a swap are still counted.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from amlpkg.runtime.dataplane import DataPlane

if TYPE_CHECKING:
    from prometheus_client import Metric

MetricsSource = Callable[[], Awaitable[Iterable["Metric"]]]

_REQUESTS = "amlpkg_inference_requests"
_COMPUTE = "amlpkg_inference_compute_seconds"
_QUEUE = "amlpkg_inference_queue_seconds"
_OUTPUTS = "amlpkg_output_summary"


def percentile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile (0..1) of cumulative ``(upper_bound, count)`` buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    target = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= target:
            if bound == float("inf"):
                return lower_bound
            span = count - lower_count
            fraction = (target - lower_count) / span if span > 0 else 1.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


Series = dict[tuple[str, ...], float]


class TelemetrySampler:
    """Deltas of request counts, errors and latency since the previous call."""

    def __init__(self, source: DataPlane | MetricsSource, hidden_prefix: str = "_") -> None:
        if isinstance(source, DataPlane):
            registry = source.metrics_registry

            async def collect() -> Iterable[Metric]:
                return list(registry.collect())

            source = collect
        self._source = source
        self._hidden = hidden_prefix
        self._last: Series = {}
        self._last_time = time.time()
        self._served: tuple[str | None, str | None] = (None, None)

    def _read(self, families: Iterable[Metric]) -> Series:
        """Every sample we use, keyed by (metric sample name, model, version[, le|outcome])."""
        values: Series = {}
        for family in families:
            if family.name not in (_REQUESTS, _COMPUTE, _QUEUE, _OUTPUTS):
                continue
            for sample in family.samples:
                labels = sample.labels
                model = labels.get("model", "")
                if model.startswith(self._hidden):
                    continue
                extra = labels.get("le") or labels.get("outcome") or labels.get("bin") or ""
                key = (sample.name, model, labels.get("version", ""), extra)
                values[key] = float(sample.value)
        return values

    async def sample(self) -> dict[str, Any]:
        """One record: totals over the served models since the last sample."""
        families = await self._source()
        now = time.time()
        current = self._read(families)
        delta = {k: v - self._last.get(k, 0.0) for k, v in current.items()}
        success = failure = compute_count = 0.0
        seconds = 0.0
        buckets: defaultdict[float, float] = defaultdict(float)
        outputs: defaultdict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        models: set[tuple[str, str]] = set()
        answered: set[tuple[str, str]] = set()
        for (name, model, version, extra), value in delta.items():
            if name == f"{_REQUESTS}_total":
                models.add((model, version))
                if value > 0:
                    answered.add((model, version))
                if extra == "success":
                    success += value
                else:
                    failure += value
            elif name in (f"{_COMPUTE}_sum", f"{_QUEUE}_sum"):
                seconds += value
            elif name == f"{_COMPUTE}_count":
                compute_count += value
            elif name == f"{_COMPUTE}_bucket":
                buckets[float(extra)] += value
            elif name == f"{_OUTPUTS}_total" and value > 0:
                outputs[(model, version)][extra] = int(value)

        # The served model: the highest version that answered in this window. Series of a
        # version swapped out stay alive, so after a rollback the highest known version
        # is not the one serving; a quiet window repeats what was served last.
        def order(mv: tuple[str, str]) -> tuple[str, int]:
            return mv[0], int(mv[1]) if mv[1].isdigit() else 0

        if answered:
            self._served = max(answered, key=order)
        elif self._served == (None, None) and models:
            self._served = max(models, key=order)
        served = self._served
        record: dict[str, Any] = {
            "kind": "inference",
            "time": now,
            "window_s": round(now - self._last_time, 3),
            "model": served[0],
            "version": served[1],
            "requests": int(success + failure),
            "errors": int(failure),
            "latency_avg_ms": round(seconds / compute_count * 1e3, 3) if compute_count else None,
        }
        served_bins = outputs.get((served[0] or "", served[1] or ""))
        if served_bins:
            record["outputs"] = served_bins
        ordered = sorted(buckets.items())
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            quantile = percentile(ordered, q)
            record[f"compute_{label}_ms"] = None if quantile is None else round(quantile * 1e3, 3)
        self._last, self._last_time = current, now
        return record
