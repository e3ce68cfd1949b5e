"""What one ``optimize`` call makes, measures and accepts, in one value.

The same options serve the embedded workspace (:func:`~amlpkg.packager.optimize.optimize`),
any store (``optimize_in``) and a team server (``optimize_on_server``), so each
option is declared once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict, Unpack

from amlpkg.packager.optimize.judge import Limits
from amlpkg.packager.optimize.measure import DEFAULT_BATCH_SIZES


@dataclass(frozen=True)
class OptimizeOptions:
    """The variants to make, the samples to check them on and what they must meet."""

    target: str = "cpu"
    """Where the variants will run: cpu, cuda, tensorrt or openvino."""
    precision: str | None = None
    """Only variants of this precision (fp32, fp16, int8); None: every one the target has."""
    auto: bool = False
    """Mark the best accepted variant as chosen for ``target`` and record why."""
    validation: Path | None = None
    """``.npz`` validation sample (one array per input, labels in ``y``); None: synthetic."""
    calibration: Path | None = None
    """``.npz`` calibration sample for static int8; None: the run's sample, then validation."""
    limits: Limits | None = None
    """What a variant must meet to be accepted; None: :class:`Limits` defaults."""
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    """Batch sizes measured (a model with a fixed batch size is measured at that one)."""
    budget_s: float = 0.25
    """Time spent measuring each batch size of each variant."""

    def with_fields(self, **fields: Unpack[OptimizeFields]) -> OptimizeOptions:
        """These options with ``fields`` (names of this class's fields) replaced."""
        return replace(self, **fields) if fields else self


class OptimizeFields(TypedDict, total=False):
    """:class:`OptimizeOptions`' fields as keywords (``optimize(ref, target="cuda")``),
    so a type checker checks each name and type."""

    target: str
    precision: str | None
    auto: bool
    validation: Path | None
    calibration: Path | None
    limits: Limits | None
    batch_sizes: tuple[int, ...]
    budget_s: float
