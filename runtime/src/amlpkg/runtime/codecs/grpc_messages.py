"""gRPC ``ModelInferRequest``/``ModelInferResponse`` <-> data-plane types.

Inputs come either as ``raw_input_contents`` (one blob per input, what tritonclient
sends) or in the typed ``contents`` fields; outputs always go back as
``raw_output_contents``, which is what tritonclient and perf_analyzer read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amlpkg.runtime.codecs.raw import from_raw, to_raw
from amlpkg.runtime.codecs.shm_tensors import SHM_REGION, read_shm_input
from amlpkg.runtime.datatypes import from_v2
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.limits import (
    DEFAULT_LIMITS,
    RequestLimits,
    check_input_count,
    check_shape,
    check_total,
)
from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.shm import SharedMemoryRegistry
from amlpkg.runtime.types import InferInput, InferRequest, InferResponse, RequestedOutput

# V2 datatype -> the typed InferTensorContents field that carries it (FP16 has none).
_CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters_to_dict(params: Any) -> dict[str, Any]:
    """A proto ``map<string, InferParameter>`` as a plain dict of Python values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(value, which)
    return out


def fill_parameters(target: Any, params: dict[str, Any]) -> None:
    """Write a dict of Python values into a proto ``map<string, InferParameter>``."""
    for key, value in params.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            slot.int64_param = value
        elif isinstance(value, float):
            slot.double_param = value
        else:
            slot.string_param = str(value)


def _typed_contents(tensor: Any, shape: tuple[int, ...], limits: RequestLimits) -> np.ndarray:
    name, datatype = tensor.name, tensor.datatype
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInputError(
            f"input {name!r}: {datatype} has no typed 'contents' field",
            hint="send it in raw_input_contents",
        )
    values = getattr(tensor.contents, field)
    count = check_shape(shape, name, limits)
    if len(values) != count:
        raise InvalidInputError(
            f"input {name!r}: {len(values)} values in contents.{field} but shape "
            f"{list(shape)} needs {count}",
            hint="the number of values must equal the product of the shape",
        )
    dt = from_v2(datatype)
    if datatype == "BYTES":
        array = np.empty(count, dtype=np.object_)
        array[:] = list(values)
        return array.reshape(shape)
    try:
        return np.asarray(values, dtype=dt.numpy).reshape(shape)
    except OverflowError:
        raise InvalidInputError(f"input {name!r}: values out of range for {datatype}") from None


def _has_contents(tensor: Any) -> bool:
    return tensor.HasField("contents") and tensor.contents.ByteSize() > 0


def decode_infer_request(
    message: Any,
    limits: RequestLimits = DEFAULT_LIMITS,
    shm: SharedMemoryRegistry | None = None,
) -> InferRequest:
    """Decode a ``ModelInferRequest`` into an :class:`InferRequest`.

    Shapes are checked against ``limits`` and the bytes sent before anything is allocated.
    """
    raw = message.raw_input_contents
    check_input_count(len(message.inputs), limits)
    if raw and any(_has_contents(t) for t in message.inputs):
        raise InvalidInputError(
            "the request sends both raw_input_contents and typed contents",
            hint="send every input in raw_input_contents, or every input in contents",
        )
    in_shm = [SHM_REGION in t.parameters for t in message.inputs]
    if raw and len(raw) != in_shm.count(False):
        raise InvalidInputError(
            f"raw_input_contents has {len(raw)} entries for "
            f"{in_shm.count(False)} inputs not in shared memory",
            hint="send one raw_input_contents entry per input, in the order of inputs",
        )
    if not message.inputs:
        raise InvalidInputError("the request has no inputs")
    inputs = []
    total = 0
    next_raw = 0
    for tensor in message.inputs:
        shape = tuple(tensor.shape)
        check_shape(shape, tensor.name, limits)
        dt = from_v2(tensor.datatype)
        params = parameters_to_dict(tensor.parameters)
        if SHM_REGION in params:
            array = read_shm_input(shm, params, dt.v2, shape, name=tensor.name, limits=limits)
        elif raw:
            array = from_raw(raw[next_raw], dt.v2, shape, tensor.name, limits)
            next_raw += 1
        else:
            array = _typed_contents(tensor, shape, limits)
        total += array.size
        check_total(total, limits)
        inputs.append(InferInput(tensor.name, dt.v2, shape, array, params))
    outputs = None
    if message.outputs:
        outputs = [
            RequestedOutput(o.name, parameters_to_dict(o.parameters)) for o in message.outputs
        ]
    return InferRequest(
        model_name=message.model_name,
        model_version=message.model_version or None,
        inputs=inputs,
        outputs=outputs,
        id=message.id or None,
        parameters=parameters_to_dict(message.parameters),
    )


def encode_infer_response(response: InferResponse) -> Any:
    """Encode an :class:`InferResponse` as a ``ModelInferResponse`` with raw outputs."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.id or "",
    )
    fill_parameters(message.parameters, response.parameters)
    raw = message.raw_output_contents
    for out in response.outputs:
        tensor = message.outputs.add(name=out.name, datatype=out.datatype, shape=out.shape)
        if SHM_REGION in out.parameters:
            # In the client's region already. Like Triton, an empty raw entry all the
            # same: NVIDIA's C++ client indexes raw_output_contents by output position.
            raw.append(b"")
            continue
        if out.parameters:
            fill_parameters(tensor.parameters, out.parameters)
        raw.append(to_raw(out.data, out.datatype))
    return message
