"""V2 JSON inference requests/responses with Triton's binary tensor extension.

A request body is JSON, optionally followed by binary tensor data; the JSON's length
is then given by the ``Inference-Header-Content-Length`` header and each binary input
says its byte size in ``parameters.binary_data_size``. Outputs are returned as binary
when the request asks (per output ``parameters.binary_data`` or request-level
``parameters.binary_data_output``), else as JSON ``data``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from amlpkg.runtime.codecs.raw import from_raw, to_raw
from amlpkg.runtime.codecs.shm_tensors import SHM_REGION, read_shm_input
from amlpkg.runtime.datatypes import Datatype, from_v2
from amlpkg.runtime.errors import InvalidInputError, PayloadTooLargeError
from amlpkg.runtime.limits import (
    DEFAULT_LIMITS,
    RequestLimits,
    check_depth,
    check_input_count,
    check_shape,
    check_total,
)
from amlpkg.runtime.shm import SharedMemoryRegistry
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
        doc = _parse_non_finite(data)
        if doc is not None:
            return doc
        raise _fail(
            f"malformed request JSON: {exc}",
            hint="send a V2 inference request object; with binary tensors set the "
            "Inference-Header-Content-Length header to the JSON part's byte length",
        ) from None
    if not isinstance(doc, dict):
        raise _fail("malformed request JSON: the body must be a JSON object")
    return doc


_NON_FINITE = (b"NaN", b"Infinity")


def _parse_non_finite(data: bytes | memoryview) -> Any:
    """Parse JSON holding NaN/Infinity/-Infinity literals, as Triton and tritonclient write
    them (orjson refuses them); None when the data has none or is malformed anyway."""
    raw = bytes(data)
    if not any(token in raw for token in _NON_FINITE):
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


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


def _json_array(
    data: Any, dt: Datatype, shape: tuple[int, ...], name: str, limits: RequestLimits
) -> np.ndarray:
    """Convert JSON ``data`` (flat or nested) to an array; counts and types are checked."""
    count = check_shape(shape, name, limits)
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
    if dt.numpy.kind == "f" and dt.numpy.itemsize < 8:
        _check_float_range(inferred, dt, name)
    if dt.numpy.kind in _INT_KINDS:
        info = np.iinfo(dt.numpy)
        low, high = inferred.min(), inferred.max()
        if low < info.min or high > info.max:
            raise _fail(
                f"input {name!r}: values out of range for {dt.v2} "
                f"[{info.min}, {info.max}]: min {low}, max {high}"
            )
    return inferred.astype(dt.numpy, copy=False).reshape(shape)


def _check_float_range(values: np.ndarray, dt: Datatype, name: str) -> None:
    """Refuse finite values a narrower float type cannot hold (they would become inf)."""
    if values.dtype.kind not in "iuf":
        return
    largest = float(np.finfo(dt.numpy).max)
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(values.astype(np.float64, copy=False))
        over = magnitude[np.isfinite(magnitude) & (magnitude > largest)]
    if over.size:
        raise _fail(
            f"input {name!r}: value {float(over[0])!r} is out of range for {dt.v2} "
            f"(largest {largest!r})",
            hint="send Infinity explicitly if an infinite value is meant",
        )


def _decode_input(
    raw: Any,
    binary: memoryview | None,
    offset: int,
    limits: RequestLimits,
    shm: SharedMemoryRegistry | None,
) -> tuple[InferInput, int]:
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
    if SHM_REGION in params:
        array = read_shm_input(shm, params, dt.v2, shape, name=name, limits=limits)
    elif size is not None:
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
        array = from_raw(binary[offset : offset + size], dt.v2, shape, name, limits)
        offset += size
    elif "data" in raw:
        array = _json_array(raw["data"], dt, shape, name, limits)
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


def _check_structure(doc: dict[str, Any], limits: RequestLimits) -> None:
    """Depth of everything but tensor data (numpy bounds that by its own rank limit)."""
    rest = {k: v for k, v in doc.items() if k != "inputs"}
    inputs = doc.get("inputs")
    if isinstance(inputs, list):
        check_input_count(len(inputs), limits)
        rest["inputs"] = [
            {k: v for k, v in i.items() if k != "data"} if isinstance(i, dict) else i
            for i in inputs
        ]
    check_depth(rest, limits.max_json_depth, "the request JSON")


def decode_request(
    body: bytes,
    header_length: int | None,
    model_name: str,
    model_version: str | None,
    *,
    limits: RequestLimits = DEFAULT_LIMITS,
    shm: SharedMemoryRegistry | None = None,
) -> InferRequest:
    """Decode a REST infer body; ``header_length`` is the Inference-Header-Content-Length.

    Cheap checks (sizes, counts, nesting) come before any tensor is built.
    """
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
    if len(view) > limits.max_json_size:
        raise PayloadTooLargeError(
            f"the request's JSON is {len(view)} bytes, over the limit of {limits.max_json_size}",
            hint="send tensors with the binary tensor extension, or raise "
            "AMLPKG_SERVER_MAX_JSON_SIZE",
        )
    doc = _parse_json(view)
    # JSON cannot nest deeper than it has '[' and '{': a small header (the binary
    # extension's) with few of them skips the walk, which is the hot path's common case.
    openers = limits.max_json_depth + 1
    if len(view) <= 64 * 1024:
        end = len(view)  # counted in the body itself: no copy of the JSON part
        openers = body.count(b"[", 0, end) + body.count(b"{", 0, end)
    if openers > limits.max_json_depth:
        _check_structure(doc, limits)
    elif isinstance(doc.get("inputs"), list):
        check_input_count(len(doc["inputs"]), limits)
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _fail("malformed request: 'inputs' must be a non-empty list")
    inputs = []
    offset = 0
    total = 0
    for raw in raw_inputs:
        decoded, offset = _decode_input(raw, binary, offset, limits, shm)
        total += decoded.data.size
        check_total(total, limits)
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
    if request_id is not None and not isinstance(request_id, str):
        raise _fail(f"malformed request: 'id' must be a string, got {type(request_id).__name__}")
    return InferRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        outputs=_decode_outputs(doc.get("outputs")),
        id=request_id,
        parameters=params,
    )


_NON_FINITE_TEXT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _float_text(value: float) -> str:
    text = repr(value)
    return _NON_FINITE_TEXT.get(text, text)


def _json_data(array: np.ndarray, datatype: str) -> Any:
    if datatype == "BYTES":
        return [
            x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in array.ravel()
        ]
    flat = np.ascontiguousarray(array).ravel()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        # orjson writes NaN/Inf as null, which readers take for NaN and lose Inf. Triton
        # writes the NaN/Infinity/-Infinity literals, which tritonclient (Python's json)
        # reads back exactly; only arrays holding them take this slower path.
        text = ",".join(_float_text(v) for v in flat.astype(np.float64).tolist())
        return orjson.Fragment("[" + text + "]")
    # orjson writes contiguous numeric arrays natively (OPT_SERIALIZE_NUMPY), far faster
    # than tolist(); ravel keeps the V2 flat layout.
    return flat


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
        if SHM_REGION in params:
            # Written to the client's region by the data plane. Like Triton, no
            # parameters: NVIDIA's C++ client reads any output parameters as binary.
            outputs.append(entry)
            continue
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
