"""Request bodies decode to the sample they carry; answers decode to the output."""

from __future__ import annotations

import json

import numpy as np
from tritonclient.grpc import service_pb2

from benchmarks.payloads import Wire, build_payload, decode_grpc, decode_http

SAMPLE = np.arange(2 * 3, dtype=np.float32).reshape(2, 3)


def test_v2_json_carries_shape_datatype_and_data() -> None:
    payload = build_payload(Wire.V2_JSON, "mlp", SAMPLE)
    assert payload.path == "/v2/models/mlp/infer"
    (tensor,) = json.loads(payload.body)["inputs"]
    assert tensor == {
        "name": "input",
        "shape": [2, 3],
        "datatype": "FP32",
        "data": SAMPLE.ravel().tolist(),
    }


def test_v2_binary_follows_the_triton_extension() -> None:
    payload = build_payload(Wire.V2_BINARY, "cnn", SAMPLE)
    size = int(payload.headers["Inference-Header-Content-Length"])
    header = json.loads(payload.body[:size])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == SAMPLE.nbytes
    assert header["outputs"] == [{"name": "output", "parameters": {"binary_data": True}}]
    assert np.array_equal(np.frombuffer(payload.body[size:], np.float32).reshape(2, 3), SAMPLE)


def test_grpc_raw_and_typed_requests() -> None:
    raw = service_pb2.ModelInferRequest.FromString(build_payload(Wire.GRPC_RAW, "m", SAMPLE).body)
    assert raw.model_name == "m"
    assert list(raw.inputs[0].shape) == [2, 3]
    assert np.array_equal(np.frombuffer(raw.raw_input_contents[0], np.float32), SAMPLE.ravel())
    typed = service_pb2.ModelInferRequest.FromString(
        build_payload(Wire.GRPC_TYPED, "m", SAMPLE).body
    )
    assert not typed.raw_input_contents
    assert list(typed.inputs[0].contents.fp32_contents) == SAMPLE.ravel().tolist()


def test_litserve_body_is_one_flat_sample() -> None:
    payload = build_payload(Wire.LITSERVE_JSON, "mlp", SAMPLE[:1])
    assert payload.path == "/predict"
    assert json.loads(payload.body) == {"input": SAMPLE[0].tolist()}


def test_bentoml_body_is_the_nested_batch() -> None:
    payload = build_payload(Wire.BENTOML_JSON, "mlp", SAMPLE[:1])
    assert payload.path == "/predict"
    assert json.loads(payload.body) == {"input": SAMPLE[:1].tolist()}
    answer = json.dumps([[1.0, 2.0]]).encode()
    assert decode_http(Wire.BENTOML_JSON, answer, {}).tolist() == [1.0, 2.0]


def test_decode_http_json_binary_and_litserve() -> None:
    out = np.linspace(0, 1, 10, dtype=np.float32)
    answer = {"outputs": [{"name": "other", "data": [0]}, {"name": "output", "data": out.tolist()}]}
    assert np.allclose(decode_http(Wire.V2_JSON, json.dumps(answer).encode(), {}), out)
    head = json.dumps(
        {
            "outputs": [
                {"name": "other", "parameters": {"binary_data_size": 4}},
                {"name": "output", "parameters": {"binary_data_size": out.nbytes}},
            ]
        }
    ).encode()
    body = head + b"\0\0\0\0" + out.tobytes()
    got = decode_http(Wire.V2_BINARY, body, {"inference-header-content-length": str(len(head))})
    assert np.array_equal(got, out)
    litserve = json.dumps({"output": out.tolist()}).encode()
    assert np.allclose(decode_http(Wire.LITSERVE_JSON, litserve, {}), out)


def test_decode_grpc_raw_and_typed() -> None:
    out = np.linspace(0, 1, 10, dtype=np.float32)
    raw = service_pb2.ModelInferResponse()
    raw.outputs.add(name="output")
    raw.raw_output_contents.append(out.tobytes())
    assert np.array_equal(decode_grpc(raw.SerializeToString()), out)
    typed = service_pb2.ModelInferResponse()
    typed.outputs.add(name="output").contents.fp32_contents.extend(out.tolist())
    assert np.array_equal(decode_grpc(typed.SerializeToString()), out)
