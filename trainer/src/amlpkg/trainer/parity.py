"""Parity between a framework's own output and ONNX Runtime's output for the same input.

A value passes when ``|onnx - expected| <= atol + rtol * |expected|`` (numpy's
``allclose`` rule); labels must match exactly. Relative error is reported as
``|onnx - expected| / max(|expected|, atol)`` so exact zeros do not divide by 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amlpkg.errors import AmlpkgError, InvalidArgumentError


@dataclass(frozen=True)
class OutputParity:
    """The comparison of one output."""

    name: str
    exact: bool  # labels: must be equal, tolerances do not apply
    max_abs_err: float
    max_rel_err: float
    mismatched: int  # elements outside tolerance (or unequal labels)
    total: int

    @property
    def ok(self) -> bool:
        """Whether every element is within tolerance."""
        return self.mismatched == 0


@dataclass(frozen=True)
class ParityReport:
    """Every compared output and the tolerances used."""

    rtol: float
    atol: float
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether all outputs agree."""
        return all(o.ok for o in self.outputs)

    @property
    def max_abs_err(self) -> float:
        """Largest absolute error over all compared numeric outputs."""
        return max((o.max_abs_err for o in self.outputs), default=0.0)

    @property
    def max_rel_err(self) -> float:
        """Largest relative error over all compared numeric outputs."""
        return max((o.max_rel_err for o in self.outputs), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "ok": self.ok,
            "rtol": self.rtol,
            "atol": self.atol,
            "max_abs_err": self.max_abs_err,
            "max_rel_err": self.max_rel_err,
            "outputs": [asdict(o) for o in self.outputs],
        }

    def summary(self) -> str:
        """One line for messages and logs."""
        bad = [f"{o.name} ({o.mismatched}/{o.total} differ)" for o in self.outputs if not o.ok]
        head = (
            f"max abs err {self.max_abs_err:.3g}, max rel err {self.max_rel_err:.3g}"
            f" (rtol={self.rtol:g}, atol={self.atol:g})"
        )
        return head + (f"; mismatched: {', '.join(bad)}" if bad else "")


class ExportParityError(AmlpkgError):
    """The exported ONNX model does not reproduce the framework's output."""

    code = "export_parity"
    http_status = 422

    def __init__(self, message: str, report: ParityReport, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


def compare(
    name: str, expected: Any, actual: Any, *, rtol: float, atol: float, exact: bool = False
) -> OutputParity:
    """Compare one output of the framework (``expected``) with ONNX Runtime's (``actual``)."""
    exp = np.asarray(expected)
    act = np.asarray(actual)
    if exp.size == act.size and exp.shape != act.shape:
        # e.g. sklearn regressors return (N,), their ONNX graph (N, 1).
        act = act.reshape(exp.shape)
    if exp.shape != act.shape:
        return OutputParity(name, exact, float("inf"), float("inf"), exp.size or 1, exp.size)
    if exact or not np.issubdtype(exp.dtype, np.number) or exp.dtype == np.bool_:
        unequal = int(np.count_nonzero(exp.astype(str) != act.astype(str)))
        return OutputParity(name, True, 0.0, 0.0, unequal, int(exp.size))
    e = exp.astype(np.float64)
    a = act.astype(np.float64)
    diff = np.abs(a - e)
    bad = ~(diff <= atol + rtol * np.abs(e))  # NaN anywhere counts as bad
    if not e.size:
        return OutputParity(name, False, 0.0, 0.0, 0, 0)
    if np.isnan(diff).any():
        return OutputParity(name, False, float("inf"), float("inf"), int(np.sum(bad)), e.size)
    rel = diff / np.maximum(np.abs(e), max(atol, np.finfo(np.float64).tiny))
    return OutputParity(
        name=name,
        exact=False,
        max_abs_err=float(diff.max()),
        max_rel_err=float(rel.max()),
        mismatched=int(np.count_nonzero(bad)),
        total=int(e.size),
    )


def run_onnx(path: Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the ONNX file at ``path`` on CPU with ONNX Runtime; return every output.

    ``inputs`` are matched to the graph's inputs by position.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in session.get_inputs()]
        if len(names) != len(inputs):
            raise InvalidArgumentError(
                f"the ONNX model takes {len(names)} inputs, the sample has {len(inputs)}"
            )
        return [np.asarray(v) for v in session.run(None, dict(zip(names, inputs, strict=True)))]
    except InvalidArgumentError:
        raise
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise InvalidArgumentError(
            f"ONNX Runtime cannot run the exported model {path}: {exc}",
            hint="check that the sample input matches the model's inputs",
        ) from exc


def check(
    expected: Sequence[tuple[str, Any, bool]],
    actual: Sequence[np.ndarray],
    *,
    rtol: float,
    atol: float,
) -> ParityReport:
    """Compare ``(name, expected, exact)`` triples with ONNX outputs, position by position."""
    if len(actual) < len(expected):
        raise InvalidArgumentError(
            f"the ONNX model has {len(actual)} outputs, the framework returned {len(expected)}"
        )
    outputs = [
        compare(name, exp, act, rtol=rtol, atol=atol, exact=exact)
        for (name, exp, exact), act in zip(expected, actual, strict=False)
    ]
    return ParityReport(rtol=rtol, atol=atol, outputs=outputs)
