"""scikit-learn to ONNX with skl2onnx, and the reference outputs to compare against.

Classifiers are exported with ZipMap off so every output is a tensor (the V2
inference protocol cannot carry a sequence of maps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amlpkg.errors import InvalidArgumentError

Expected = list[tuple[str, Any, bool]]


def is_sklearn_model(model: Any) -> bool:
    """Whether ``model`` is a scikit-learn estimator (without importing sklearn)."""
    return any(c.__module__.startswith("sklearn.") for c in type(model).__mro__)


def _sample(sample_input: Any) -> np.ndarray:
    array = np.asarray(sample_input)
    if array.ndim != 2 or array.shape[0] == 0:
        raise InvalidArgumentError(
            f"the scikit-learn sample input must be a non-empty 2-D array, got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise InvalidArgumentError(f"the sample input must be numeric, got dtype {array.dtype}")
    return array.astype(np.float32)


def reference_sklearn(model: Any, sample_input: Any) -> tuple[list[np.ndarray], Expected]:
    """The ONNX inputs for ``sample_input`` and the model's own outputs on the same values."""
    from sklearn.base import is_classifier

    sample = _sample(sample_input)
    # The reference runs on the same float32 values ONNX Runtime sees.
    if is_classifier(model):
        expected: Expected = [("label", model.predict(sample), True)]
        if hasattr(model, "predict_proba"):
            expected.append(("probabilities", model.predict_proba(sample), False))
    elif hasattr(model, "predict"):
        expected = [("variable", model.predict(sample), False)]
    elif hasattr(model, "transform"):
        expected = [("variable", model.transform(sample), False)]
    else:
        raise InvalidArgumentError(f"{type(model).__name__} has neither predict nor transform")
    return [sample], expected


def export_sklearn(model: Any, sample_input: Any, opset: int | None) -> bytes:
    """Convert ``model`` with skl2onnx; return the serialized ONNX model."""
    from skl2onnx import to_onnx
    from sklearn.base import is_classifier

    sample = _sample(sample_input)
    options: dict[int, dict[str, Any]] | None = None
    if is_classifier(model):
        options = {id(model): {"zipmap": False}}
    try:
        onx = to_onnx(model, sample[:1], target_opset=opset, options=options)
    except Exception as exc:  # skl2onnx raises many unrelated types
        raise InvalidArgumentError(
            f"skl2onnx cannot convert {type(model).__name__}: {exc}",
            hint="check the model is fitted and supported by skl2onnx",
        ) from exc
    return bytes(onx.SerializeToString())
