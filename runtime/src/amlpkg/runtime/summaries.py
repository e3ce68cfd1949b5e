"""Output summaries for the rollout gate's ``drift``: one scalar per response row, binned.

Opt-in (``--output-summaries``, ``AMLPKG_SERVER_OUTPUT_SUMMARIES=true``): each
response's first output is reduced to one number per row, on live traffic:

- one value per row (a regressor, a classifier's label): the value;
- rows that are probabilities (in [0, 1], summing to 1): the argmax class;
- any other row: its L2 norm.

The numbers fall in fixed bins on a signed logarithmic scale (four per octave from
2^-10 to 2^20, values beyond clamp to the end bins, smaller ones count as zero, NaN
has its own bin), so every device, deployment, version and window shares one
histogram layout of :data:`BINS` bins without knowing the model's range.
:class:`OutputSummaries` counts them per model version in the runtime's metrics
registry (``amlpkg_output_summary_total{model, version, bin}``): ``/metrics`` shows
them, the edge agent's sampler reads them as deltas, and with an OTLP endpoint they
are exported as a delta sum (:mod:`amlpkg.runtime.summaries_otlp`). The collector
checks that what arrives stays within this layout (``amlpkg.collector.outputs``).

Cost (``python -m benchmarks.output_summaries``, 2 busy cores): about 4 µs to count a
one-value response, 13-22 µs for 1-8 rows of 10 scores, 77 µs for 32 rows of 1,000;
small responses are binned value by value, as numpy's per-call overhead would cost
more than the work. Off, the data plane checks one attribute per request.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from amlpkg.runtime.types import InferResponse

if TYPE_CHECKING:
    from amlpkg.runtime.summaries_otlp import SummaryExport

log = logging.getLogger(__name__)

METRIC = "amlpkg_output_summary"
PROBE_ID = "edge-agent-smoke"
"""Request id of probes that are not live traffic (the edge agent's smoke inference):
never counted."""
PER_OCTAVE = 4
LOW_EXPONENT = -10
OCTAVES = 30
MAGNITUDES = PER_OCTAVE * OCTAVES
NAN_BIN = 0
ZERO_BIN = MAGNITUDES + 1
BINS = 2 * MAGNITUDES + 2
"""Bin 0: NaN; 1..120: negative values (largest magnitude first); 121: zero; 122..241:
positive values (smallest first)."""
_EMPTY = np.zeros(0, dtype=np.float64)
_KEYS = [str(b) for b in range(BINS)]
_SMALL = 64
"""Up to this many rows, bins are found value by value (numpy's per-call overhead
is most of the cost of a small response); beyond, vectorized."""
_TINY = 2.0**LOW_EXPONENT


def row_summaries(data: np.ndarray) -> np.ndarray:
    """One number per row of an output tensor (see the module docstring); none for BYTES."""
    if data.dtype.kind not in "biuf" or data.size == 0:
        return _EMPTY
    rows = data.reshape(1, -1) if data.ndim == 0 else data.reshape(data.shape[0], -1)
    if rows.shape[1] == 1:
        return rows[:, 0].astype(np.float64)
    rows = rows.astype(np.float64)
    if data.dtype.kind == "f" and _probabilities(rows):
        return rows.argmax(axis=1).astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))


def _probabilities(rows: np.ndarray) -> bool:
    low, high = rows.min(), rows.max()  # NaN compares False: not probabilities
    if not (low >= 0.0 and high <= 1.0):
        return False
    return bool(np.abs(rows.sum(axis=1) - 1.0).max() <= 1e-3 + 1e-5)


def bin_of(value: float) -> int:
    """The bin of one value: what :func:`bins` computes, without numpy."""
    if math.isnan(value):
        return NAN_BIN
    magnitude = abs(value)
    if magnitude < _TINY:
        return ZERO_BIN
    if magnitude == math.inf:
        index = MAGNITUDES - 1
    else:
        scaled = math.floor(math.log2(magnitude) * PER_OCTAVE) - LOW_EXPONENT * PER_OCTAVE
        index = min(MAGNITUDES - 1, max(0, scaled))
    return ZERO_BIN + 1 + index if value > 0 else ZERO_BIN - 1 - index


def bins(values: np.ndarray) -> np.ndarray:
    """The bin of each value (integers in ``[0, BINS)``)."""
    magnitude = np.abs(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.floor(np.log2(magnitude) * PER_OCTAVE) - LOW_EXPONENT * PER_OCTAVE
    index = np.clip(
        np.nan_to_num(scaled, nan=0.0, posinf=MAGNITUDES, neginf=0.0), 0, MAGNITUDES - 1
    )
    index = index.astype(np.int64)
    out = np.where(values > 0, ZERO_BIN + 1 + index, ZERO_BIN - 1 - index)
    out = np.where(magnitude < 2.0**LOW_EXPONENT, ZERO_BIN, out)
    return np.where(np.isnan(values), NAN_BIN, out)


def histogram(data: np.ndarray) -> dict[str, int]:
    """``{bin: count}`` of one output tensor's row summaries."""
    values = row_summaries(data)
    if values.size <= _SMALL:
        out: dict[str, int] = {}
        for value in values.tolist():
            key = _KEYS[bin_of(value)]
            out[key] = out.get(key, 0) + 1
        return out
    found, counts = np.unique(bins(values), return_counts=True)
    return {_KEYS[b]: c for b, c in zip(found.tolist(), counts.tolist(), strict=True)}


class OutputSummaries:
    """Counts each response's output summaries per bin on a metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            METRIC,
            "Responses' output summaries by fixed bin (value, argmax class or L2 norm per row).",
            ["model", "version", "bin"],
            registry=registry,
        )
        self._children: dict[tuple[str, str, str], Any] = {}
        self.export: SummaryExport | None = None
        """The OTLP export (:mod:`.summaries_otlp`) when one runs; closed by :meth:`close`."""

    @classmethod
    def from_env(cls, registry: CollectorRegistry, environ: Mapping[str, str]) -> OutputSummaries:
        """Counting on ``registry``, exported by OTLP when the ``OTEL_*`` variables ask."""
        from amlpkg.runtime.summaries_otlp import export_from_env

        summaries = cls(registry)
        summaries.export = export_from_env(summaries, environ)
        return summaries

    def count(self, request_id: str | None, response: InferResponse) -> None:
        """Count ``response``'s first output; never fails the request over telemetry."""
        if request_id == PROBE_ID or not response.outputs:
            return
        try:
            counts = histogram(np.asarray(response.outputs[0].data))
        except (TypeError, ValueError) as exc:
            log.debug("output not summarized: %s", exc)
            return
        model, version = response.model_name, response.model_version
        for key, n in counts.items():
            child = self._children.get((model, version, key))
            if child is None:
                child = self._children[model, version, key] = self.counter.labels(
                    model, version, key
                )
            child.inc(n)

    def values(self) -> dict[tuple[str, str, str], int]:
        """``{(model, version, bin): count}`` counted so far by this process."""
        out = {}
        for family in self.counter.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    key = (labels["model"], labels["version"], labels["bin"])
                    out[key] = int(sample.value)
        return out

    def close(self) -> None:
        """Flush and stop the OTLP export, if any."""
        if self.export is not None:
            self.export.shutdown()
            self.export = None
