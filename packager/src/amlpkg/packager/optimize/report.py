"""What one ``optimize`` call made, measured and decided."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlpkg.packager.optimize.store import Variant


@dataclass
class OptimizeReport:
    """What ``optimize`` made, measured and decided."""

    model: str
    target: str
    provider: str
    measured: bool
    measure_note: str | None
    validation: str
    synthetic_validation: bool
    calibration: str | None
    baseline: dict[str, Any]
    variants: list[Variant] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chosen: Variant | None = None
    choice: str | None = None
    signatures: dict[str, str] = field(default_factory=dict)
    """Variant id -> sha256 of its signature record (``--sign-key``)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "model": self.model,
            "target": self.target,
            "provider": self.provider,
            "measured": self.measured,
            "measure_note": self.measure_note,
            "validation": self.validation,
            "synthetic_validation": self.synthetic_validation,
            "calibration": self.calibration,
            "baseline": self.baseline,
            "variants": [v.to_dict() for v in self.variants],
            "skipped": self.skipped,
            "chosen": None if self.chosen is None else self.chosen.id,
            "choice": self.choice,
            "signatures": self.signatures,
        }
