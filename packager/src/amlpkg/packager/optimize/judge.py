"""Accepting, refusing and choosing variants: accuracy first, then speed.

A variant is accepted when its outputs stay within the allowed error of the
original's on the validation sample, its predicted labels (and task accuracy,
where labels are given) do not drop by more than allowed, and it is not slower
than allowed. A variant not measured on its own provider is never accepted.
``--auto`` takes the fastest accepted variant, the smaller file on a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.optimize.recipe import VariantSpec
from amlpkg.packager.optimize.store import Variant

# Allowed max abs error per precision when --max-abs-error is not given, times
# max(1, largest output magnitude): outputs in the hundreds get room in proportion.
DEFAULT_ABS_ERROR = {"fp32": 1e-4, "fp16": 1e-2, "int8": 5e-2}


@dataclass(frozen=True)
class Limits:
    """What a variant must meet to be accepted."""

    max_abs_error: float | None = None
    """Largest allowed absolute output error; None: :data:`DEFAULT_ABS_ERROR` scaled."""
    max_slowdown: float = 1.05
    """Largest allowed variant p50 / original p50 (geometric mean over batch sizes).

    The 5% over 1.0 absorbs timing noise on a shared machine.
    """
    max_accuracy_drop: float = 0.01
    """Largest allowed drop of label agreement with the original, and of task accuracy."""

    def __post_init__(self) -> None:
        if self.max_abs_error is not None and not self.max_abs_error >= 0:
            raise InvalidArgumentError("--max-abs-error must be >= 0")
        if not self.max_slowdown > 0:
            raise InvalidArgumentError("--max-slowdown must be > 0 (1.0: no slower)")
        if not 0 <= self.max_accuracy_drop <= 1:
            raise InvalidArgumentError("--max-accuracy-drop must be between 0 and 1")


def judge(
    spec: VariantSpec, accuracy: dict[str, Any], speed: float | None, limits: Limits
) -> tuple[bool, str]:
    """``(accepted, reason)`` for a measured variant."""
    scale = max(1.0, float(accuracy.get("output_scale", 0.0)))
    allowed = (
        limits.max_abs_error
        if limits.max_abs_error is not None
        else DEFAULT_ABS_ERROR[spec.precision] * scale
    )
    accuracy["allowed_abs_error"] = allowed
    error = float(accuracy["max_abs_error"])
    if error > allowed:
        return False, f"less accurate than allowed: max abs error {error:.3g} > {allowed:.3g}"
    agreement = accuracy.get("agreement")
    if agreement is not None and agreement < 1 - limits.max_accuracy_drop:
        return False, (
            f"predictions differ from the original's on {1 - agreement:.1%} of samples"
            f" (allowed {limits.max_accuracy_drop:.1%})"
        )
    if "accuracy" in accuracy:
        drop = accuracy["accuracy_original"] - accuracy["accuracy"]
        if drop > limits.max_accuracy_drop:
            return False, (
                f"accuracy {accuracy['accuracy']:.4f} vs the original's"
                f" {accuracy['accuracy_original']:.4f} (allowed drop {limits.max_accuracy_drop})"
            )
    if speed is None:
        return False, "not measured on its provider here"
    if speed < 1 / limits.max_slowdown:
        return False, (
            f"slower than allowed: {1 / speed:.2f}x the original's p50 latency"
            f" (allowed {limits.max_slowdown:.2f}x)"
        )
    return True, f"within limits: {speed:.2f}x the original's speed, max abs error {error:.3g}"


def decide(
    spec: VariantSpec, variant: Variant, limits: Limits, missing_provider: str | None
) -> tuple[bool, str]:
    """``(accepted, reason)``: accuracy first, then speed; unmeasured is never accepted."""
    if not variant.accuracy.get("checked", True):
        accepted, reason = False, "accuracy not checked: " + variant.accuracy["note"]
    else:
        accepted, reason = judge(
            spec, variant.accuracy, variant.measurements.get("speedup"), limits
        )
    if missing_provider is None:
        return accepted, reason
    if accepted or reason.startswith("not measured"):
        reason = "accuracy within limits on the CPU"
    return False, f"not measured: {missing_provider} cannot run on this machine; {reason}"


def choose(variants: list[Variant], target: str) -> tuple[Variant | None, str]:
    """The fastest accepted variant (smaller file on a tie) and why; None: keep the original."""
    accepted = [v for v in variants if v.accepted]
    if not accepted:
        return None, f"no {target} variant passed the limits; serve the original"
    ranked = sorted(accepted, key=lambda v: (-v.measurements["speedup"], v.size))
    best = ranked[0]
    sizes = ", ".join(batch for batch in best.measurements["batches"])
    why = (
        f"fastest accepted {target} variant: {best.measurements['speedup']:.2f}x the original's"
        f" speed (geometric mean of p50 latency over batch sizes {sizes}),"
        f" max abs error {best.accuracy['max_abs_error']:.3g}"
        f" (allowed {best.accuracy['allowed_abs_error']:.3g})"
    )
    if "accuracy" in best.accuracy:
        why += f", accuracy {best.accuracy['accuracy']:.4f}"
    others = [f"{v.kind}-{v.precision} {v.measurements['speedup']:.2f}x" for v in ranked[1:]]
    if others:
        why += "; beat " + ", ".join(others)
    return best, why
