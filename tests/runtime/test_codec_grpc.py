"""gRPC message codec: raw and typed contents in, raw contents out."""

from __future__ import annotations

import numpy as np
import pytest

from amlpkg.runtime.codecs.grpc_messages import (
    decode_infer_request,
    encode_infer_response,
    parameters_to_dict,
)
from amlpkg.runtime.codecs.raw import from_raw, to_raw
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.types import InferOutput, InferResponse


def _request(**kwargs: object) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name="m", **kwargs)


def test_raw_inputs_decode_with_their_shape_and_dtype() -> None:
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    s = np.array([b"x", b"yz"], dtype=object)
    message = _request(
        model_version="3",
        id="r",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(name="a", datatype="INT64", shape=[2, 3]),
            pb.ModelInferRequest.InferInputTensor(name="s", datatype="BYTES", shape=[2]),
        ],
        raw_input_contents=[to_raw(a, "INT64"), to_raw(s, "BYTES")],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="y")],
    )
    message.parameters["flag"].bool_param = True
    request = decode_infer_request(message)
    assert (request.model_version, request.id) == ("3", "r")
    np.testing.assert_array_equal(request.inputs[0].data, a)
    assert request.inputs[1].data.tolist() == [b"x", b"yz"]
    assert request.outputs is not None and [o.name for o in request.outputs] == ["y"]
    assert request.parameters == {"flag": True}


@pytest.mark.parametrize(
    ("datatype", "field", "values", "dtype"),
    [
        ("FP32", "fp32_contents", [1.5, 2.0], np.float32),
        ("INT8", "int_contents", [-3, 4], np.int8),
        ("UINT16", "uint_contents", [3, 4], np.uint16),
        ("INT64", "int64_contents", [-(2**40), 1], np.int64),
        ("BOOL", "bool_contents", [True, False], np.bool_),
        ("FP64", "fp64_contents", [0.25, 8.0], np.float64),
    ],
)
def test_typed_contents_decode(datatype: str, field: str, values: list, dtype: type) -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=[2])
    getattr(tensor.contents, field).extend(values)
    request = decode_infer_request(_request(inputs=[tensor]))
    assert request.inputs[0].data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(request.inputs[0].data, np.array(values, dtype=dtype))


def test_typed_contents_count_must_match_shape() -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[3])
    tensor.contents.fp32_contents.extend([1.0])
    with pytest.raises(
        InvalidInputError, match=r"1 values in contents.fp32_contents but shape \[3\]"
    ):
        decode_infer_request(_request(inputs=[tensor]))


def test_fp16_needs_raw_contents() -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(name="h", datatype="FP16", shape=[1])
    with pytest.raises(InvalidInputError, match="raw_input_contents"):
        decode_infer_request(_request(inputs=[tensor]))


def test_raw_contents_must_match_inputs_and_sizes() -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[2])
    with pytest.raises(InvalidInputError, match="2 entries for 1 inputs"):
        decode_infer_request(_request(inputs=[tensor], raw_input_contents=[b"", b""]))
    with pytest.raises(InvalidInputError, match="got 4 bytes of FP32 data, expected 8"):
        decode_infer_request(_request(inputs=[tensor], raw_input_contents=[b"\0" * 4]))
    with pytest.raises(InvalidInputError, match="no inputs"):
        decode_infer_request(_request())


def test_response_uses_raw_output_contents() -> None:
    y = np.array([[1, 2]], np.float16)
    response = InferResponse(
        "m",
        "1",
        [
            InferOutput("y", "FP16", (1, 2), y),
            InferOutput("s", "BYTES", (1,), np.array(["é"], object)),
        ],
        id="r",
        parameters={"n": 3, "x": 0.5, "t": "v"},
    )
    message = encode_infer_response(response)
    assert [o.name for o in message.outputs] == ["y", "s"]
    assert list(message.outputs[0].shape) == [1, 2]
    np.testing.assert_array_equal(from_raw(message.raw_output_contents[0], "FP16", (1, 2), "y"), y)
    assert from_raw(message.raw_output_contents[1], "BYTES", (1,), "s").tolist() == ["é".encode()]
    assert parameters_to_dict(message.parameters) == {"n": 3, "x": 0.5, "t": "v"}
    assert message.id == "r"
