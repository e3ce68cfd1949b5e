"""Making variant files: offline graph optimization, int8 quantization, fp16.

Each function reads the original ONNX file and writes a new one; the original
(a read-only blob in the store) is never changed. ONNX Runtime and converter
errors are wrapped into :class:`InvalidArgumentError` naming the variant, so a
model that cannot take a variant says why instead of failing with a traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.optimize.data import Sample
from amlpkg.packager.optimize.recipe import FP16, GRAPH, INT8_DYNAMIC, INT8_STATIC, VariantSpec

_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}
# Operators whose presence shows that quantization did something.
_QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "QLinearMatMul",
    "QLinearConv",
    "DynamicQuantizeMatMul",
}


class VariantNotApplicable(InvalidArgumentError):
    """The model cannot take this variant (nothing to quantize, an unsupported op, ...)."""


def graph_optimize(source: Path, dest: Path, level: str) -> None:
    """Save ONNX Runtime's optimized graph of ``source`` at ``level`` to ``dest``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    options.optimized_model_filepath = str(dest)
    # Creating the session writes the file; the CPU provider is the one here.
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def preprocess(source: Path, dest: Path) -> Path:
    """Shape inference + basic optimization before quantization, as ONNX Runtime advises.

    Returns ``dest``, or ``source`` when the model defeats symbolic shape
    inference (quantization still works; it only sees fewer shapes).
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(source, dest)
    except Exception:
        dest.unlink(missing_ok=True)
        return source
    return dest


def quantize_dynamic_int8(source: Path, dest: Path) -> None:
    """int8 weights, activations quantized at run time (CPU)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    prepared = preprocess(source, dest.with_suffix(".pre.onnx"))
    quantize_dynamic(prepared, dest, weight_type=QuantType.QInt8)


def _batches(sample: Sample, rows: int, batch: int) -> Iterator[dict[str, Any]]:
    for start in range(0, rows, batch):
        yield sample.take(start, min(start + batch, rows))


def quantize_static_int8(
    source: Path,
    dest: Path,
    calibration: Sample,
    *,
    batch: int,
    symmetric: bool = False,
    per_channel: bool = False,
    max_rows: int = 256,
) -> None:
    """QDQ int8 with activation ranges calibrated (min/max) on ``calibration``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class SampleReader(CalibrationDataReader):
        """The calibration sample, ``batch`` rows per call."""

        def __init__(self) -> None:
            self._iter = _batches(calibration, min(calibration.rows, max_rows), batch)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._iter, None)

    reader = SampleReader()
    prepared = preprocess(source, dest.with_suffix(".pre.onnx"))
    quantize_static(
        prepared,
        dest,
        reader,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
    )


def convert_fp16(source: Path, dest: Path) -> int:
    """fp16 weights and compute, fp32 inputs and outputs; return how many clamps happened.

    The converter clamps weights beyond +-1e4 and tiny ones below 1e-7 (in
    magnitude) and warns once per tensor and bound; those warnings are counted
    here instead of escaping. The accuracy check then shows what clamping cost.
    """
    import onnx
    from onnxconverter_common import float16  # type: ignore[import-untyped]

    model = onnx.load(str(source))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(dest))
    return sum(1 for w in caught if "truncated" in str(w.message))


def _check_quantizable(path: Path, kind: str) -> None:
    """Refuse up front a graph without default-domain ops (e.g. only ``ai.onnx.ml`` ones).

    ONNX Runtime's quantizer fails on those with an obscure message; say what it is.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if not any(node.domain in ("", "ai.onnx") for node in model.graph.node):
        ops = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node})
        raise VariantNotApplicable(
            f"{kind}: the model has no operator ONNX Runtime quantizes; its operators are"
            f" {', '.join(ops[:6])}{' ...' if len(ops) > 6 else ''}"
        )


def _quantized(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(node.op_type in _QUANT_OPS for node in model.graph.node)


def make_variant(
    spec: VariantSpec, source: Path, dest: Path, calibration: Sample | None, batch: int
) -> dict[str, Any]:
    """Write the variant ``spec`` of ``source`` to ``dest``; return how it was made.

    Raises :class:`VariantNotApplicable` when the model cannot take it, e.g.
    quantization found no operator to quantize.
    """
    if spec.kind in (INT8_DYNAMIC, INT8_STATIC):
        _check_quantizable(source, spec.kind)
    facts: dict[str, Any] = {"kind": spec.kind, "precision": spec.precision}
    if spec.kind == GRAPH:
        facts["graph_level"] = spec.graph_level
    try:
        if spec.kind == GRAPH:
            graph_optimize(source, dest, spec.graph_level)
        elif spec.kind == INT8_DYNAMIC:
            quantize_dynamic_int8(source, dest)
            facts["quantization"] = {"format": "dynamic", "weights": "int8 per tensor"}
        elif spec.kind == INT8_STATIC:
            if calibration is None:
                raise InvalidArgumentError("static int8 needs a calibration sample")
            quantize_static_int8(
                source,
                dest,
                calibration,
                batch=batch,
                symmetric=bool(spec.options.get("symmetric")),
                per_channel=bool(spec.options.get("per_channel")),
            )
            facts["calibration"] = calibration.source
            facts["quantization"] = {
                "format": "QDQ",
                "calibration": "minmax",
                "symmetric_activations": bool(spec.options.get("symmetric")),
                "per_channel": bool(spec.options.get("per_channel")),
            }
        elif spec.kind == FP16:
            facts["fp16_clamped_tensors"] = convert_fp16(source, dest)
        else:  # pragma: no cover - the recipe only makes the kinds above
            raise InvalidArgumentError(f"unknown variant kind {spec.kind!r}")
    except InvalidArgumentError:
        raise
    except Exception as exc:  # onnxruntime / onnx / converter errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise VariantNotApplicable(f"{spec.kind} could not be made: {first}") from exc
    if spec.kind in (INT8_DYNAMIC, INT8_STATIC) and not _quantized(dest):
        raise VariantNotApplicable(
            f"{spec.kind}: the model has no operator ONNX Runtime quantizes"
            " (MatMul, Gemm, Conv, ...); the variant would equal the original"
        )
    return facts
