"""V2 JSON inference requests/responses with Triton's binary tensor extension.

A request body is JSON, optionally followed by binary tensor data; the JSON's length
is then given by the ``Inference-Header-Content-Length`` header and each binary input
says its byte size in ``parameters.binary_data_size``. Outputs are returned as binary
when the request asks (per output ``parameters.binary_data`` or request-level
``parameters.binary_data_output``), else as JSON ``data``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from amlpkg.runtime.codecs.raw import element_count, from_raw, to_raw
from amlpkg.runtime.datatypes import Datatype, from_v2
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.types import InferInput, InferRequest, InferResponse, RequestedOutput

HEADER_LENGTH = "inference-header-content-length"
_INT_KINDS = "iu"
_NUMBER_KINDS = "iuf"


def _fail(message: str, hint: str | None = None) -> InvalidInputError:
    return InvalidInputError(message, hint=hint)


def _parse_json(data: bytes | memoryview) -> dict[str, Any]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _fail(
            f"malformed request JSON: {exc}",
            hint="send a V2 inference request object; with binary tensors set the "
            "Inference-Header-Content-Length header to the JSON part's byte length",
        ) from None
    if not isinstance(doc, dict):
        raise _fail("malformed request JSON: the body must be a JSON object")
    return doc


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise _fail(f"input {name!r}: 'shape' must be a list of non-negative integers, got {raw!r}")
    return tuple(raw)


def _flatten(data: Any) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _flatten_strings(data: Any, name: str) -> list[bytes]:
    out: list[bytes] = []
    for item in _flatten(data):
        if not isinstance(item, str):
            raise _fail(f"input {name!r}: BYTES data must hold strings, got {item!r}")
        out.append(item.encode())
    return out


def _json_array(data: Any, dt: Datatype, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Convert JSON ``data`` (flat or nested) to an array; counts and types are checked."""
    count = element_count(shape)
    if dt.v2 == "BYTES":
        items = _flatten_strings(data, name)
        if len(items) != count:
            raise _fail(
                f"input {name!r}: {len(items)} elements in 'data' but shape {list(shape)} "
                f"needs {count}"
            )
        array = np.empty(count, dtype=np.object_)
        array[:] = items
        return array.reshape(shape)
    try:
        # Let numpy infer first so a string, a float for an integer type or a ragged
        # list is reported instead of being silently converted or truncated.
        inferred = np.asarray(data)
    except ValueError:
        raise _fail(
            f"input {name!r}: 'data' is not a regular (non-ragged) list of numbers"
        ) from None
    kind = inferred.dtype.kind
    if inferred.size != count:
        raise _fail(
            f"input {name!r}: {inferred.size} elements in 'data' but shape {list(shape)} "
            f"needs {count}",
            hint="the number of values must equal the product of the shape",
        )
    if count == 0:
        return np.empty(shape, dtype=dt.numpy)
    if dt.numpy.kind in _INT_KINDS and kind in "fO":
        # Values past int64 (UINT64) make numpy infer float or object: retry exactly
        # when every value really is an integer.
        flat = _flatten(data)
        if all(type(v) is int for v in flat):
            try:
                return np.array(flat, dtype=dt.numpy).reshape(shape)
            except OverflowError:
                raise _fail(f"input {name!r}: values out of range for {dt.v2}") from None
    if dt.v2 == "BOOL":
        if kind != "b":
            raise _fail(f"input {name!r}: BOOL data must be true/false, got {inferred.dtype}")
    elif kind not in (_INT_KINDS if dt.numpy.kind in _INT_KINDS else _NUMBER_KINDS):
        what = "integers" if dt.numpy.kind in _INT_KINDS else "numbers"
        example = inferred.ravel()[:1].tolist()[0]
        raise _fail(f"input {name!r}: {dt.v2} data must be {what}, got values like {example!r}")
    if dt.numpy.kind in _INT_KINDS:
        info = np.iinfo(dt.numpy)
        low, high = inferred.min(), inferred.max()
        if low < info.min or high > info.max:
            raise _fail(
                f"input {name!r}: values out of range for {dt.v2} "
                f"[{info.min}, {info.max}]: min {low}, max {high}"
            )
    return inferred.astype(dt.numpy, copy=False).reshape(shape)


def _decode_input(raw: Any, binary: memoryview | None, offset: int) -> tuple[InferInput, int]:
    if not isinstance(raw, dict):
        raise _fail("malformed request: each entry of 'inputs' must be an object")
    name = raw.get("name")
    if not isinstance(name, str):
        raise _fail("malformed request: an input has no 'name' string")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise _fail(f"input {name!r}: missing 'datatype' string")
    dt = from_v2(datatype)
    shape = _shape(raw.get("shape"), name)
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise _fail(f"input {name!r}: 'parameters' must be an object")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _fail(f"input {name!r}: binary_data_size must be a non-negative integer")
        if binary is None or offset + size > len(binary):
            available = 0 if binary is None else len(binary) - offset
            raise _fail(
                f"input {name!r}: binary_data_size is {size} but only {available} bytes of "
                "binary data follow the JSON",
                hint="set Inference-Header-Content-Length to the JSON length and append "
                "each input's bytes in order",
            )
        array = from_raw(binary[offset : offset + size], dt.v2, shape, name)
        offset += size
    elif "data" in raw:
        array = _json_array(raw["data"], dt, shape, name)
    else:
        raise _fail(f"input {name!r}: no 'data' and no binary_data_size parameter")
    return InferInput(name, dt.v2, shape, array, params), offset


def _decode_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _fail("malformed request: 'outputs' must be a list")
    outputs = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _fail("malformed request: each entry of 'outputs' needs a 'name' string")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise _fail(f"output {item['name']!r}: 'parameters' must be an object")
        outputs.append(RequestedOutput(item["name"], params))
    return outputs


def decode_request(
    body: bytes, header_length: int | None, model_name: str, model_version: str | None
) -> InferRequest:
    """Decode a REST infer body; ``header_length`` is the Inference-Header-Content-Length."""
    view = memoryview(body)
    binary: memoryview | None = None
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise _fail(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes",
                hint="the header must give the byte length of the JSON part of the body",
            )
        binary = view[header_length:]
        view = view[:header_length]
    doc = _parse_json(view)
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _fail("malformed request: 'inputs' must be a non-empty list")
    inputs = []
    offset = 0
    for raw in raw_inputs:
        decoded, offset = _decode_input(raw, binary, offset)
        inputs.append(decoded)
    if binary is not None and offset != len(binary):
        raise _fail(
            f"{len(binary) - offset} bytes of binary data are not claimed by any input's "
            "binary_data_size",
            hint="check Inference-Header-Content-Length and each binary_data_size",
        )
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise _fail("malformed request: 'parameters' must be an object")
    request_id = doc.get("id")
    return InferRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        outputs=_decode_outputs(doc.get("outputs")),
        id=None if request_id is None else str(request_id),
        parameters=params,
    )


def _json_data(array: np.ndarray, datatype: str) -> Any:
    if datatype == "BYTES":
        return [
            x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in array.ravel()
        ]
    # orjson writes contiguous numeric arrays natively (OPT_SERIALIZE_NUMPY), far faster
    # than tolist(); ravel keeps the V2 flat layout.
    return np.ascontiguousarray(array).ravel()


def encode_response(response: InferResponse, request: InferRequest) -> tuple[bytes, int | None]:
    """Encode a response; returns ``(body, json_length)``, json_length None when JSON only."""
    default_binary = bool(request.parameters.get("binary_data_output", False))
    wanted: dict[str, bool | None] = {}
    if request.outputs:
        wanted = {o.name: o.binary_data for o in request.outputs}
    blobs: list[bytes] = []
    outputs = []
    for out in response.outputs:
        flag = wanted.get(out.name)
        params = dict(out.parameters)
        entry: dict[str, Any] = {
            "name": out.name,
            "datatype": out.datatype,
            "shape": list(out.shape),
        }
        if default_binary if flag is None else flag:
            blob = to_raw(out.data, out.datatype)
            params["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            entry["data"] = _json_data(out.data, out.datatype)
        if params:
            entry["parameters"] = params
        outputs.append(entry)
    doc: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def dumps(doc: Any) -> bytes:
    """JSON-encode a control-plane answer (metadata, config, statistics)."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
