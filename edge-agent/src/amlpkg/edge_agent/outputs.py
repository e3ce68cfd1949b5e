"""Output summaries for the rollout gate's ``drift``: one scalar per response row, binned.

Each response's first output is reduced to one number per row, on live traffic:

- one value per row (a regressor, a classifier's label): the value;
- rows that are probabilities (in [0, 1], summing to 1): the argmax class;
- any other row: its L2 norm.

The numbers fall in fixed bins on a signed logarithmic scale (four per octave from
2^-10 to 2^20, values beyond clamp to the end bins, smaller ones count as zero, NaN
has its own bin), so every device, version and window shares one histogram layout of
:data:`BINS` bins without knowing the model's range. :class:`SummarizingDataPlane`
counts them per model version in the runtime's metrics registry
(``amlpkg_output_summary_total{model, version, bin}``), where the telemetry sampler
reads them as deltas like every other series. The collector checks that what a device
sends stays within this layout (:mod:`amlpkg.collector.outputs`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from prometheus_client import Counter

from amlpkg.edge_agent.backend import SMOKE_ID
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.types import InferRequest, InferResponse

log = logging.getLogger(__name__)

METRIC = "amlpkg_output_summary"
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


class SummarizingDataPlane(DataPlane):
    """The runtime's data plane, also counting each response's output summaries per bin.

    The agent's smoke inferences (zeros) are left out: they are not live traffic.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output_summaries = Counter(
            METRIC,
            "Responses' output summaries by fixed bin (value, argmax class or L2 norm per row).",
            ["model", "version", "bin"],
            registry=self.metrics_registry,
        )

    async def infer(self, request: InferRequest, *, trace_context: Any = None) -> InferResponse:
        """Run the request as the runtime does, then count its first output's summaries."""
        response = await super().infer(request, trace_context=trace_context)
        if request.id != SMOKE_ID and response.outputs:
            try:
                counts = histogram(np.asarray(response.outputs[0].data))
            except (TypeError, ValueError) as exc:  # never fail a request over telemetry
                log.debug("output not summarized: %s", exc)
                return response
            for key, count in counts.items():
                self.output_summaries.labels(response.model_name, response.model_version, key).inc(
                    count
                )
        return response
