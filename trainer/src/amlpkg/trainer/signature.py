"""Reading an ONNX file: validity, opset and the signature of its graph.

The signature lists inputs and outputs with their name, element type (the ONNX
name, e.g. ``float``, and the KServe v2 datatype, e.g. ``FP32``) and shape; a
dynamic dimension is its symbolic name (``"batch"``) or -1 when it has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlpkg.datatypes import BY_ONNX
from amlpkg.errors import InvalidArgumentError, NotFoundError

# bfloat16 has a V2 name but no numpy dtype, so the shared table (amlpkg.datatypes)
# does not list it; a signature still names it.
_BF16 = "BFLOAT16"


def v2_datatype(elem: str) -> str | None:
    """The V2 datatype of an ONNX TensorProto element type name (``FLOAT`` -> ``FP32``)."""
    if elem == _BF16:
        return "BF16"
    found = BY_ONNX.get(f"tensor({elem.lower()})")
    return None if found is None else found.v2


def _value_info(value: Any) -> dict[str, Any]:
    from onnx import TensorProto

    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": value.name, "elem_type": kind or "unknown", "datatype": None, "shape": None}
    tensor = value.type.tensor_type
    elem = TensorProto.DataType.Name(tensor.elem_type)
    shape: list[int | str] | None = None
    if tensor.HasField("shape"):
        shape = []
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            elif dim.HasField("dim_param") and dim.dim_param:
                shape.append(dim.dim_param)
            else:
                shape.append(-1)
    return {
        "name": value.name,
        "elem_type": elem.lower(),
        "datatype": v2_datatype(elem),
        "shape": shape,
    }


def _invalid(shown: Path, exc: Exception) -> InvalidArgumentError:
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return InvalidArgumentError(
        f"{shown} is not a valid ONNX model: {reason}",
        hint="export it again (amlpkg.trainer.export_onnx) or check the file",
    )


def inspect_onnx(path: Path, *, shown_as: Path | None = None) -> tuple[dict[str, Any], int | None]:
    """Validate the ONNX file at ``path``; return ``(signature, default-domain opset)``.

    Raises :class:`InvalidArgumentError` saying why when it is not a valid,
    self-contained model. ``shown_as`` is the path to name in messages.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    shown = shown_as or path
    if not path.exists():
        raise NotFoundError(f"model file {path} does not exist", hint="check the path")
    if not path.is_file():
        raise InvalidArgumentError(f"{path} is not a file", hint="give the path of a .onnx file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        raise _invalid(shown, exc) from exc
    if any(uses_external_data(t) for t in model.graph.initializer):
        raise InvalidArgumentError(
            f"{shown} keeps weights in external data files, which would not be stored",
            hint="save it as one file: onnx.save(model, path, save_as_external_data=False)",
        )
    try:
        # The path form also checks models over 2 GB.
        onnx.checker.check_model(str(path))
    except Exception as exc:  # ValidationError and friends
        raise _invalid(shown, exc) from exc
    initializers = {init.name for init in model.graph.initializer}
    signature = {
        "inputs": [_value_info(v) for v in model.graph.input if v.name not in initializers],
        "outputs": [_value_info(v) for v in model.graph.output],
    }
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return signature, opset
