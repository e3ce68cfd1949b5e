"""Property tests of the decoders: any input is decoded or refused with a 4xx error, and
what is allocated is bounded by the bytes received, never by the shapes declared."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlpkg.errors import AmlpkgError
from amlpkg.runtime.codecs.grpc_messages import decode_infer_request
from amlpkg.runtime.codecs.raw import from_raw
from amlpkg.runtime.codecs.v2_json import decode_request
from amlpkg.runtime.limits import RequestLimits
from amlpkg.runtime.protocol import grpc_service_pb2 as pb

DATATYPES = ["BOOL", "INT8", "INT32", "INT64", "UINT64", "FP16", "FP32", "FP64", "BYTES", "X"]
# Small, edge and hostile dims: a zero next to a huge dim, dims past int64.
DIMS = st.one_of(
    st.integers(0, 4),
    st.sampled_from([0, 1, 2**31, 2**40, 2**62, 2**63 - 1, 10**30, -1]),
)
SHAPES = st.lists(DIMS, max_size=6)
LIMITS = RequestLimits(max_elements=1 << 20, max_json_size=1 << 20)
# Python objects around a decoded array cost far more than its bytes; what matters is
# that the bound is proportional to the body, not to the declared shape.
PER_BODY_BYTE = 64
SLACK = 256 * 1024

EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bounded(decode: Callable[[], Any], body_size: int) -> None:
    """Run ``decode``: it must succeed or raise a 4xx error, within the memory bound."""
    tracemalloc.start()
    try:
        decode()
    except AmlpkgError as exc:
        assert 400 <= exc.http_status < 500, f"{type(exc).__name__}: {exc}"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= PER_BODY_BYTE * body_size + SLACK, f"{peak} bytes for a {body_size}-byte body"


@EXAMPLES
@given(datatype=st.sampled_from(DATATYPES), shape=SHAPES, data=st.binary(max_size=512))
def test_raw_tensors(datatype: str, shape: list[int], data: bytes) -> None:
    _bounded(lambda: from_raw(data, datatype, tuple(shape), "x", LIMITS), len(data) + 64)


JSON_SCALARS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)
JSON_DATA = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=40)


@st.composite
def json_inputs(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": draw(st.sampled_from(["x", "INPUT0", ""])),
        "datatype": draw(st.sampled_from(DATATYPES)),
        "shape": draw(SHAPES),
    }
    if draw(st.booleans()):
        entry["data"] = draw(JSON_DATA)
    else:
        entry["parameters"] = {"binary_data_size": draw(st.integers(-2, 600))}
    return entry


@EXAMPLES
@given(
    inputs=st.lists(json_inputs(), max_size=4),
    tail=st.binary(max_size=512),
    extra=st.dictionaries(st.sampled_from(["id", "parameters", "outputs"]), JSON_DATA, max_size=2),
)
def test_json_requests_with_binary_tails(
    inputs: list[dict[str, Any]], tail: bytes, extra: dict[str, Any]
) -> None:
    # The stdlib writes integers past 64 bits too (orjson, the server's parser, does not).
    header = json.dumps({"inputs": inputs, **extra}).encode()
    body = header + tail
    _bounded(lambda: decode_request(body, len(header), "m", None, limits=LIMITS), len(body))


@EXAMPLES
@given(
    tensors=st.lists(
        st.tuples(
            st.sampled_from(DATATYPES), st.lists(DIMS.filter(lambda d: d < 2**63), max_size=5)
        ),
        max_size=4,
    ),
    raws=st.lists(st.binary(max_size=256), max_size=4),
    typed=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=16),
)
def test_grpc_requests(
    tensors: list[tuple[str, list[int]]], raws: list[bytes], typed: list[int]
) -> None:
    message = pb.ModelInferRequest(model_name="m")
    for i, (datatype, shape) in enumerate(tensors):
        tensor = message.inputs.add(name=f"in{i}", datatype=datatype, shape=shape)
        if typed and i == 0:
            tensor.contents.int_contents.extend(typed)
    message.raw_input_contents.extend(raws)
    size = message.ByteSize()
    _bounded(lambda: decode_infer_request(message, LIMITS), size + 64)


def test_the_declared_size_never_drives_allocation() -> None:
    """The cases the issue found, exactly: tiny bodies declaring huge tensors."""
    hostile: list[tuple[str, tuple[int, ...], bytes]] = [
        ("BYTES", (2**31,), b"\x01\x00\x00\x00a" * 20),
        ("BYTES", (0, 2**62), b""),
        ("FP32", (0, 10**15, 10**15), b""),
        ("INT8", (2**40,), b"\x00" * 100),
    ]
    for datatype, shape, data in hostile:
        _bounded(lambda: from_raw(data, datatype, shape, "x", LIMITS), len(data) + 64)  # noqa: B023
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "BYTES",
                    "shape": [2**33],
                    "parameters": {"binary_data_size": 5},
                }
            ]
        }
    )
    body = header + b"\x01\x00\x00\x00a"
    _bounded(lambda: decode_request(body, len(header), "m", None, limits=LIMITS), len(body))
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype="BYTES", shape=[2**40])
    message.raw_input_contents.append(b"\x00" * 8)
    _bounded(lambda: decode_infer_request(message, LIMITS), 100)


def test_numbers_json_cannot_hold_are_refused_not_rounded() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1e39, 1.0]}]}
    )
    try:
        decode_request(body, None, "m", None)
    except AmlpkgError as exc:
        assert exc.http_status == 400 and "out of range for FP32" in str(exc)
    else:
        raise AssertionError("1e39 was accepted as FP32")
    nan_inf = (
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], '
        b'"data": [NaN, Infinity, -Infinity]}]}'
    )
    array = decode_request(nan_inf, None, "m", None).inputs[0].data
    assert np.isnan(array[0]) and array[1] == np.inf and array[2] == -np.inf
