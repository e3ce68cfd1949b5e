"""PyTorch to ONNX with ``torch.onnx.export`` on CPU, batch axis dynamic.

The dynamo exporter is tried first; where it cannot capture the model (data
dependent control flow, a batch of one that it specialises, ...) the
TorchScript exporter is used. The result records which one ran.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from amlpkg.errors import InvalidArgumentError

Expected = list[tuple[str, Any, bool]]


def is_torch_model(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (torch is imported only if loaded already)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _inputs(sample_input: Any) -> tuple[Any, ...]:
    import torch

    items = sample_input if isinstance(sample_input, tuple | list) else (sample_input,)
    tensors = tuple(
        t.detach().cpu() if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
        for t in items
    )
    if not tensors or any(t.ndim == 0 for t in tensors):
        raise InvalidArgumentError("the torch sample input must be tensors with a batch axis")
    return tensors


def _flatten(output: Any) -> list[Any]:
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, tuple | list):
        return [t for item in output for t in _flatten(item)]
    if isinstance(output, dict):
        return [t for key in output for t in _flatten(output[key])]
    raise InvalidArgumentError(f"cannot compare a forward() output of type {type(output)}")


def _names(prefix: str, count: int) -> list[str]:
    return [prefix] if count == 1 else [f"{prefix}_{i}" for i in range(count)]


def input_names(model: Any, count: int) -> list[str]:
    """The names of ``forward``'s first ``count`` positional parameters (``input_ids``,
    ``attention_mask``, ...), so clients need not guess; ``input``/``input_<i>`` when
    ``forward`` takes ``*args`` or its names are not valid identifiers."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return _names("input", count)
    positional = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < count or not all(n.isidentifier() for n in positional[:count]):
        return _names("input", count)
    return positional[:count]


def _export(
    model: Any, args: tuple[Any, ...], opset: int | None, dynamo: bool, n_outputs: int
) -> bytes:
    import torch

    names = input_names(model, len(args))
    output_names = _names("output", n_outputs)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The exporters warn about their own internals (deprecations, torchvision).
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=True,
                input_names=names,
                output_names=output_names,
                opset_version=opset,
                dynamic_shapes=tuple({0: batch} for _ in args),
                verbose=False,
                optimize=True,
            )
        else:
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=False,
                input_names=names,
                output_names=output_names,
                opset_version=opset,
                dynamic_axes={name: {0: "batch"} for name in (*names, *output_names)},
            )
        # The dynamo exporter may write weights next to the graph; load them back in.
        import onnx

        onx = onnx.load(str(path), load_external_data=True)
        buffer = io.BytesIO()
        onnx.save_model(onx, buffer)
        return buffer.getvalue()


def reference_torch(model: Any, sample_input: Any) -> tuple[list[np.ndarray], Expected]:
    """The ONNX inputs for ``sample_input`` and ``model``'s forward() outputs (eval mode)."""
    import torch

    args = _inputs(sample_input)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = _flatten(model(*args))
    finally:
        model.train(was_training)
    names = _names("output", len(outputs))
    expected: Expected = [
        (name, t.detach().cpu().numpy(), False) for name, t in zip(names, outputs, strict=True)
    ]
    return [t.numpy() for t in args], expected


def export_torch(
    model: Any, sample_input: Any, opset: int | None, exporter: str = "auto", n_outputs: int = 1
) -> tuple[bytes, str]:
    """Export ``model`` in eval mode; return ``(onnx bytes, exporter used)``."""
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise InvalidArgumentError(
            f"unknown exporter {exporter!r}", hint="use auto, dynamo or torchscript"
        )
    args = _inputs(sample_input)
    was_training = model.training
    model.eval()
    errors: list[str] = []
    try:
        order = {"auto": (True, False), "dynamo": (True,), "torchscript": (False,)}[exporter]
        for dynamo in order:
            try:
                data = _export(model, args, opset, dynamo, n_outputs)
                return data, "dynamo" if dynamo else "torchscript"
            except Exception as exc:  # exporters raise many types; try the next one
                errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {exc}")
    finally:
        model.train(was_training)
    raise InvalidArgumentError(
        "torch.onnx.export failed: " + " | ".join(e[:400] for e in errors),
        hint="make forward() traceable, or pass exporter='torchscript'",
    )
