"""``export_onnx``: a trained model to an ONNX file, proven equal on a sample.

After conversion the ONNX file runs in ONNX Runtime on ``sample_input`` and its
outputs are compared with the framework's own (``predict``/``predict_proba``
for scikit-learn, ``forward`` for PyTorch). A mismatch raises
:class:`ExportParityError`; it is never just a warning. With an active run the
file is logged as ``model/<name>.onnx`` and the parity result as metrics/tags.

Frameworks are imported inside the functions: importing this module is light.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.trainer.parity import ExportParityError, ParityReport, check, run_onnx
from amlpkg.trainer.tracking import current_run

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ExportResult:
    """What was exported and how closely it matches the framework."""

    path: Path
    framework: str  # "sklearn" or "torch"
    exporter: str  # "skl2onnx", "dynamo" or "torchscript"
    opset: int | None
    parity: ParityReport
    run_id: str | None = None
    artifact_path: str | None = None  # inside the run, e.g. "model/model.onnx"

    @property
    def uri(self) -> str | None:
        """``runs:/<run>/<path>``, what ``amlpkg models register`` accepts; None if not logged."""
        if self.run_id is None or self.artifact_path is None:
            return None
        return f"runs:/{self.run_id}/{self.artifact_path}"

    @property
    def max_abs_err(self) -> float:
        """Largest absolute difference seen on the sample."""
        return self.parity.max_abs_err

    @property
    def max_rel_err(self) -> float:
        """Largest relative difference seen on the sample."""
        return self.parity.max_rel_err


def _opset_of(data: bytes) -> int | None:
    import onnx

    model = onnx.load_model_from_string(data)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _reference(model: Any, sample_input: Any) -> tuple[list[Any], list[tuple[str, Any, bool]]]:
    from amlpkg.trainer.export_sklearn import is_sklearn_model, reference_sklearn
    from amlpkg.trainer.export_torch import is_torch_model, reference_torch

    if is_torch_model(model):
        return reference_torch(model, sample_input)
    if is_sklearn_model(model):
        return reference_sklearn(model, sample_input)
    raise InvalidArgumentError(
        f"cannot export or check a {type(model).__module__}.{type(model).__name__}",
        hint="scikit-learn estimators and torch.nn.Module are supported",
    )


def export_onnx(
    model: Any,
    sample_input: Any,
    *,
    path: str | Path | None = None,
    opset: int | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    log: bool = True,
    name: str = "model",
    exporter: str = "auto",
) -> ExportResult:
    """Export a scikit-learn or PyTorch model to ONNX and check parity on ``sample_input``.

    ``path``: where to write the file (default: a new temporary folder).
    ``exporter``: for PyTorch, ``auto`` (dynamo, then TorchScript), ``dynamo`` or
    ``torchscript``. Raises :class:`ExportParityError` when outputs differ beyond
    ``|onnx - ref| <= atol + rtol * |ref|`` or labels differ.
    """
    from amlpkg.trainer.export_sklearn import export_sklearn, is_sklearn_model
    from amlpkg.trainer.export_torch import export_torch, is_torch_model

    if not _NAME.match(name):
        raise InvalidArgumentError(f"export name {name!r} must match {_NAME.pattern}")
    if rtol < 0 or atol < 0:
        raise InvalidArgumentError("rtol and atol must be >= 0")
    # The reference first: it validates the sample and counts the outputs to name.
    inputs, expected = _reference(model, sample_input)
    if is_torch_model(model):
        data, used = export_torch(model, sample_input, opset, exporter, len(expected))
        framework = "torch"
    elif is_sklearn_model(model):
        data, framework, used = export_sklearn(model, sample_input, opset), "sklearn", "skl2onnx"
    else:
        raise InvalidArgumentError(
            f"cannot export a {type(model).__module__}.{type(model).__name__}",
            hint="export_onnx supports scikit-learn estimators and torch.nn.Module",
        )
    target = (
        Path(path)
        if path is not None
        else Path(tempfile.mkdtemp(prefix="amlpkg-")) / (f"{name}.onnx")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    report = check(expected, run_onnx(target, inputs), rtol=rtol, atol=atol)
    result = ExportResult(target, framework, used, _opset_of(data), report)
    # Inside `amlpkg run` the launcher's run is joined even before any log_* call.
    run = current_run() if log else None
    if run is not None:
        run.log_metrics(
            {
                "onnx_parity_max_abs_err": report.max_abs_err,
                "onnx_parity_max_rel_err": report.max_rel_err,
            }
        )
        run.set_tags(
            {
                "onnx_parity": "passed" if report.ok else "failed",
                "onnx_parity_rtol": rtol,
                "onnx_parity_atol": atol,
                "onnx_exporter": used,
                "onnx_opset": result.opset,
            }
        )
    if not report.ok:
        raise ExportParityError(
            f"the exported ONNX model differs from the {framework} model: {report.summary()}",
            report,
            hint="check unsupported ops or non-deterministic layers; loosen rtol/atol only "
            "if the difference is expected",
        )
    if run is not None:
        artifact = run.log_artifact(target, "model")[0]
        result = ExportResult(target, framework, used, result.opset, report, run.id, artifact)
    return result


def verify_onnx_parity(
    onnx_path: str | Path, model: Any, sample_input: Any, *, rtol: float = 1e-4, atol: float = 1e-5
) -> ParityReport:
    """Check an existing ONNX file against ``model`` on ``sample_input``; raise on mismatch.

    Useful after editing or optimizing a file: the reference outputs come from the
    framework, the ONNX outputs from ONNX Runtime.
    """
    inputs, expected = _reference(model, sample_input)
    report = check(expected, run_onnx(Path(onnx_path), inputs), rtol=rtol, atol=atol)
    if not report.ok:
        raise ExportParityError(f"{onnx_path} differs from the model: {report.summary()}", report)
    return report
