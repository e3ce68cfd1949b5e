"""Checking an inference request against the model before anything is queued."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.session import TensorInfo, to_onnx_strings
from amlpkg.runtime.types import InferRequest


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def validate_request(
    request: InferRequest,
    model: str,
    inputs: Mapping[str, TensorInfo],
    outputs: Mapping[str, TensorInfo],
    max_batch_size: int,
) -> tuple[dict[str, np.ndarray], tuple[str, ...], int]:
    """The feeds, the output names to return and the batch size (samples; 1 unbatched).

    Every message names the model and the tensor, and says what was expected and what came.
    """
    feeds: dict[str, np.ndarray] = {}
    for given in request.inputs:
        info = inputs.get(given.name)
        where = f"model {model!r} input {given.name!r}"
        if info is None:
            raise InvalidInputError(
                f"model {model!r} has no input {given.name!r}",
                hint=f"its inputs are {sorted(inputs)}",
            )
        if given.name in feeds:
            raise InvalidInputError(f"{where} is given twice", hint="send each input once")
        if given.datatype != info.datatype.v2:
            raise InvalidInputError(
                f"{where}: expected datatype {info.datatype.v2}, got {given.datatype}"
            )
        shape = tuple(given.shape)
        if len(shape) != len(info.shape) or any(
            e not in (-1, g) for e, g in zip(info.shape, shape, strict=True)
        ):
            raise InvalidInputError(
                f"{where}: expected shape {_fmt(info.shape)} (-1 = any size), got {_fmt(shape)}"
            )
        data = given.data
        if data.shape != shape:
            if data.size != int(np.prod(shape, dtype=np.int64)):
                raise InvalidInputError(
                    f"{where}: shape {_fmt(shape)} needs {int(np.prod(shape))} elements, "
                    f"the data has {data.size}"
                )
            data = data.reshape(shape)
        if info.datatype.v2 == "BYTES":
            # Converted here, per request: one bad request must not fail a whole batch.
            data = to_onnx_strings(data, where)
        elif data.dtype != info.datatype.numpy:
            raise InvalidInputError(
                f"{where}: data of numpy dtype {data.dtype} does not match datatype "
                f"{info.datatype.v2} ({info.datatype.numpy})"
            )
        feeds[given.name] = data
    missing = [name for name in inputs if name not in feeds]
    if missing:
        raise InvalidInputError(
            f"model {model!r}: missing input(s) {missing}",
            hint=f"the model needs {list(inputs)}",
        )
    batch = _batch_size(feeds, model, max_batch_size)
    return feeds, _output_names(request, model, outputs), batch


def _batch_size(feeds: Mapping[str, np.ndarray], model: str, max_batch_size: int) -> int:
    if max_batch_size == 0:
        return 1
    sizes = {name: a.shape[0] for name, a in feeds.items()}
    distinct = set(sizes.values())
    if len(distinct) > 1:
        raise InvalidInputError(
            f"model {model!r}: inputs disagree on the batch (first) dim: {sizes}",
            hint="every input of one request must have the same batch size",
        )
    batch = distinct.pop() if distinct else 1
    if batch < 1:
        raise InvalidInputError(f"model {model!r}: batch size must be at least 1, got {batch}")
    if batch > max_batch_size:
        raise InvalidInputError(
            f"model {model!r}: batch of {batch} samples is over max_batch_size {max_batch_size}",
            hint="split the request into smaller batches",
        )
    return batch


def _output_names(
    request: InferRequest, model: str, outputs: Mapping[str, TensorInfo]
) -> tuple[str, ...]:
    if not request.outputs:
        return tuple(outputs)
    names: dict[str, None] = {}
    for wanted in request.outputs:
        if wanted.name not in outputs:
            raise InvalidInputError(
                f"model {model!r} has no output {wanted.name!r}",
                hint=f"its outputs are {sorted(outputs)}",
            )
        names[wanted.name] = None
    return tuple(names)
