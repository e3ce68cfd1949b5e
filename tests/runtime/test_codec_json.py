"""V2 JSON codec with Triton's binary tensor extension: decode, encode, strictness."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from amlpkg.runtime.codecs.raw import from_raw, serialize_bytes_tensor, to_raw
from amlpkg.runtime.codecs.v2_json import decode_request, encode_response
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.types import InferOutput, InferRequest, InferResponse, RequestedOutput


def _body(*inputs: dict, **extra: object) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def _decode(body: bytes, header_length: int | None = None) -> InferRequest:
    return decode_request(body, header_length, "m", None)


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("FP32", [1.5, 2, 3, 4], np.float32),
        ("FP16", [0.5, 1, 2, 4], np.float16),
        ("FP64", [1, 2, 3, 4.25], np.float64),
        ("INT8", [-128, 0, 1, 127], np.int8),
        ("INT64", [-(2**40), 0, 1, 2**40], np.int64),
        ("UINT8", [0, 1, 2, 255], np.uint8),
        ("UINT64", [0, 1, 2, 2**63], np.uint64),
        ("BOOL", [True, False, True, True], np.bool_),
    ],
)
def test_flat_and_nested_data_decode_to_typed_arrays(
    datatype: str, data: list, dtype: type
) -> None:
    for payload in (data, [data[:2], data[2:]]):
        request = _decode(
            _body({"name": "x", "datatype": datatype, "shape": [2, 2], "data": payload})
        )
        array = request.inputs[0].data
        assert array.dtype == np.dtype(dtype)
        assert array.shape == (2, 2)
        np.testing.assert_array_equal(array.ravel(), np.array(data, dtype=dtype))


def test_bytes_strings_decode_to_utf8_bytes() -> None:
    request = _decode(
        _body({"name": "s", "datatype": "BYTES", "shape": [2], "data": ["héllo", ""]})
    )
    assert request.inputs[0].data.tolist() == ["héllo".encode(), b""]


def test_request_fields_are_kept() -> None:
    body = _body(
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},
        id="req-1",
        outputs=[{"name": "y", "parameters": {"binary_data": True}}],
        parameters={"binary_data_output": True},
    )
    request = decode_request(body, None, "model", "2")
    assert (request.model_name, request.model_version, request.id) == ("model", "2", "req-1")
    assert request.outputs is not None and request.outputs[0].name == "y"
    assert request.outputs[0].binary_data is True
    assert request.parameters == {"binary_data_output": True}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "malformed request JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"inputs": []}', "'inputs' must be a non-empty list"),
        (_body({"datatype": "FP32", "shape": [1], "data": [1]}), "no 'name'"),
        (
            _body({"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}),
            "unknown datatype 'FP99'",
        ),
        (_body({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}), "non-negative"),
        (
            _body({"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}),
            "2 elements in 'data' but shape [3] needs 3",
        ),
        (
            _body({"name": "x", "datatype": "FP32", "shape": [2], "data": ["a", "b"]}),
            "FP32 data must be numbers",
        ),
        (
            _body({"name": "x", "datatype": "INT32", "shape": [2], "data": [1.5, 2]}),
            "INT32 data must be integers",
        ),
        (
            _body({"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}),
            "out of range for INT8",
        ),
        (
            _body({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}),
            "BOOL data must be true/false",
        ),
        (
            _body({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3]]}),
            "not a regular",
        ),
        (
            _body({"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}),
            "BYTES data must hold strings",
        ),
        (
            _body({"name": "x", "datatype": "FP32", "shape": [1]}),
            "no 'data' and no binary_data_size",
        ),
    ],
)
def test_bad_json_requests_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        _decode(raw)
    assert message in str(info.value)
    assert info.value.http_status == 400


def _binary_request(arrays: dict[str, tuple[str, np.ndarray]]) -> tuple[bytes, int]:
    inputs, blobs = [], []
    for name, (datatype, array) in arrays.items():
        blob = to_raw(array, datatype)
        blobs.append(blob)
        inputs.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    header = _body(*inputs)
    return header + b"".join(blobs), len(header)


def test_binary_inputs_round_trip() -> None:
    a = np.arange(6, dtype=np.float16).reshape(2, 3)
    b = np.array([[b"ab", b""], [b"\x00\xff", b"xyz"]], dtype=object)
    body, length = _binary_request({"a": ("FP16", a), "b": ("BYTES", b)})
    request = _decode(body, length)
    np.testing.assert_array_equal(request.inputs[0].data, a)
    assert request.inputs[1].data.tolist() == b.tolist()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda body, n: (body, n + 10_000), "Inference-Header-Content-Length is"),
        (lambda body, n: (body[:-1], n), "only 15 bytes of binary data follow"),
        (lambda body, n: (body + b"zz", n), "2 bytes of binary data are not claimed"),
        (lambda body, n: (body, n - 1), "malformed request JSON"),
    ],
)
def test_bad_binary_framing_is_a_clear_400(mutate, message: str) -> None:
    body, length = _binary_request({"a": ("FP32", np.ones(4, np.float32))})
    bad_body, bad_length = mutate(body, length)
    with pytest.raises(InvalidInputError) as info:
        _decode(bad_body, bad_length)
    assert message in str(info.value)


def test_binary_size_must_match_shape_and_datatype() -> None:
    with pytest.raises(InvalidInputError, match=r"got 8 bytes of FP32 data, expected 16"):
        from_raw(b"\x00" * 8, "FP32", (4,), "x")


def test_bytes_elements_must_fill_the_buffer_exactly() -> None:
    good = serialize_bytes_tensor(np.array([b"a", b"bc"], dtype=object))
    assert from_raw(good, "BYTES", (2,), "s").tolist() == [b"a", b"bc"]
    with pytest.raises(InvalidInputError, match="fewer than the 3 elements"):
        from_raw(good, "BYTES", (3,), "s")
    with pytest.raises(InvalidInputError, match="left over"):
        from_raw(good + struct.pack("<I", 0), "BYTES", (2,), "s")
    with pytest.raises(InvalidInputError, match="claims 100 bytes"):
        from_raw(struct.pack("<I", 100) + b"abc", "BYTES", (1,), "s")


def _response() -> InferResponse:
    return InferResponse(
        "m",
        "1",
        [
            InferOutput("y", "FP32", (2, 2), np.array([[1, 2], [3, 4]], np.float32)),
            InferOutput("s", "BYTES", (1,), np.array(["héllo"], dtype=object)),
        ],
        id="r1",
    )


def test_json_response_has_flat_data() -> None:
    request = InferRequest("m", None, [])
    body, length = encode_response(_response(), request)
    assert length is None
    doc = orjson.loads(body)
    assert doc["id"] == "r1" and doc["model_version"] == "1"
    assert doc["outputs"][0] == {
        "name": "y",
        "datatype": "FP32",
        "shape": [2, 2],
        "data": [1, 2, 3, 4],
    }
    assert doc["outputs"][1]["data"] == ["héllo"]


def test_binary_outputs_follow_the_json_per_output_choice() -> None:
    request = InferRequest(
        "m", None, [], outputs=[RequestedOutput("y", {"binary_data": True}), RequestedOutput("s")]
    )
    body, length = encode_response(_response(), request)
    assert length is not None
    doc = orjson.loads(body[:length])
    y, s = doc["outputs"]
    assert "data" not in y and y["parameters"]["binary_data_size"] == 16
    assert s["data"] == ["héllo"]
    np.testing.assert_array_equal(np.frombuffer(body[length:], np.float32), [1, 2, 3, 4])


def test_request_level_binary_data_output_applies_to_all() -> None:
    request = InferRequest("m", None, [], parameters={"binary_data_output": True})
    body, length = encode_response(_response(), request)
    assert length is not None
    doc = orjson.loads(body[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in doc["outputs"]]
    assert sizes == [16, 4 + len("héllo".encode())]
    assert len(body) == length + sum(sizes)
