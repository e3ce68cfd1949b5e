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

Cost: binning one response is a few numpy calls (about 20-40 µs on a small output;
``benchmarks/output_summaries.py``); off, the data plane checks one attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

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


def row_summaries(data: np.ndarray) -> np.ndarray:
    """One number per row of an output tensor (see the module docstring); none for BYTES."""
    if data.dtype.kind not in "biuf" or data.size == 0:
        return _EMPTY
    values = np.asarray(data, dtype=np.float64)
    rows = values.reshape(1, -1) if values.ndim == 0 else values.reshape(values.shape[0], -1)
    if rows.shape[1] == 1:
        return rows[:, 0]
    if data.dtype.kind == "f" and _probabilities(rows):
        return rows.argmax(axis=1).astype(np.float64)
    return np.linalg.norm(rows, axis=1)


def _probabilities(rows: np.ndarray) -> bool:
    with np.errstate(invalid="ignore"):
        return bool(
            np.isfinite(rows).all()
            and rows.min() >= 0.0
            and rows.max() <= 1.0
            and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3)
        )


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
    found, counts = np.unique(bins(row_summaries(data)), return_counts=True)
    return {str(int(b)): int(c) for b, c in zip(found, counts, strict=True)}


class OutputSummaries:
    """Counts each response's output summaries per bin on a metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            METRIC,
            "Responses' output summaries by fixed bin (value, argmax class or L2 norm per row).",
            ["model", "version", "bin"],
            registry=registry,
        )
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
        for key, n in counts.items():
            self.counter.labels(response.model_name, response.model_version, key).inc(n)

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
