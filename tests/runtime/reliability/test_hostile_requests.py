"""Hostile and malformed requests against a real server: 4xx (never 5xx), bounded memory,
no leaked paths or model lists; Triton's texts where its clients match on them."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from urllib.parse import quote

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from tests.runtime.conftest import ServerProcess
from tests.runtime.reliability.conftest import vm_hwm_kib

pytestmark = pytest.mark.slow

# Superscript two and ARABIC-INDIC DIGIT ONE pass str.isdigit(); 5,000 digits pass int()'s limit.
HOSTILE_VERSIONS = ["\u00b2", "\u0661", "9" * 5000, "-1", "0", " 1", "1.0", "\x00"]


def _stub(server: ServerProcess) -> pb_grpc.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(server.grpc_url)
    return pb_grpc.GRPCInferenceServiceStub(channel)


def _binary_infer(model: str, datatype: str, shape: list[int], blob: bytes) -> tuple[bytes, dict]:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    )
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


def _assert_client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


def test_declared_sizes_do_not_drive_memory(
    fresh_server: Callable[..., ServerProcess],
) -> None:
    server = fresh_server()
    stub = _stub(server)
    before = vm_hwm_kib(server.process.pid)
    small_bytes = struct.pack("<I", 1) + b"a"
    cases = [
        ("nope", "BYTES", [2**31], small_bytes * 24),  # decoded before the model lookup
        ("identity_bytes", "BYTES", [8, 2**28], small_bytes * 24),
        ("identity_fp32", "FP32", [0, 2**62], b""),
        ("identity_fp32", "FP32", [0, 10**15, 10**15], b""),
        ("identity_uint8", "UINT8", [2**40], b"\x00" * 100),
    ]
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for model, datatype, shape, blob in cases:
            body, headers = _binary_infer(model, datatype, shape, blob)
            _assert_client_error(
                client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
            )
    for model, datatype, shape, blob in cases:
        request = pb.ModelInferRequest(model_name=model)
        request.inputs.add(name="INPUT0", datatype=datatype, shape=shape)
        request.raw_input_contents.append(blob)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=30)
        assert info.value.code() in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.NOT_FOUND,
        ), info.value
    grown_mib = (vm_hwm_kib(server.process.pid) - before) / 1024
    assert grown_mib < 32, f"peak RSS grew by {grown_mib:.0f} MiB on ~100-byte requests"


def test_oversized_json_is_refused_before_it_is_parsed(server: ServerProcess) -> None:
    # The test server takes 1 MiB bodies; a 2 MiB body of tiny inputs is refused unread.
    inputs = [
        {"name": f"i{i}", "datatype": "FP32", "shape": [1], "data": [0]} for i in range(40000)
    ]
    body = orjson.dumps({"inputs": inputs})
    response = httpx.post(f"{server.base_url}/v2/models/mlp/infer", content=body, timeout=30)
    assert response.status_code == 413


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_hostile_versions_are_unknown_on_both_transports(
    server: ServerProcess, version: str
) -> None:
    quoted = quote(version, safe="")
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for path in (
            f"/v2/models/mlp/versions/{quoted}",
            f"/v2/models/mlp/versions/{quoted}/ready",
        ):
            response = client.get(path)
            assert response.status_code in (400, 404), (path[:60], response.status_code)
        body = orjson.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64], "data": [0.0] * 64}]}
        )
        infer = client.post(f"/v2/models/mlp/versions/{quoted}/infer", content=body)
        assert infer.status_code == 404, infer.text[:200]
        assert infer.json()["error"].startswith("Request for unknown model: 'mlp' version")
    stub = _stub(server)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="mlp", version=version), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_zero_size_tensor_with_huge_dims_on_a_real_model(server: ServerProcess) -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [0, 2**62], "data": []}]}
    )
    response = httpx.post(
        f"{server.base_url}/v2/models/identity_fp32/infer", content=body, timeout=30
    )
    _assert_client_error(response)


def test_nul_in_a_model_name_with_a_file_override(server: ServerProcess) -> None:
    files = {"file:1/model.onnx": base64.b64encode(b"not onnx").decode()}
    response = httpx.post(
        f"{server.base_url}/v2/repository/models/{quote('a' + chr(0) + 'b')}/load",
        content=orjson.dumps({"parameters": files}),
        timeout=30,
    )
    _assert_client_error(response)
    request = pb.RepositoryModelLoadRequest(model_name="a\x00b")
    request.parameters["file:1/model.onnx"].bytes_param = b"not onnx"
    with pytest.raises(grpc.RpcError) as info:
        _stub(server).RepositoryModelLoad(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "config",
    [
        "[" * 20000 + "]" * 20000,  # flow-style YAML: the parser recurses per level
        "{a: " * 3000 + "1" + "}" * 3000,
    ],
)
def test_deeply_nested_config_on_load(server: ServerProcess, config: str) -> None:
    response = httpx.post(
        f"{server.base_url}/v2/repository/models/spare/load",
        content=orjson.dumps({"parameters": {"config": config}}),
        timeout=60,
    )
    assert response.status_code == 400, response.text[:200]
    request = pb.RepositoryModelLoadRequest(model_name="spare")
    request.parameters["config"].string_param = config
    with pytest.raises(grpc.RpcError) as info:
        _stub(server).RepositoryModelLoad(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_error_bodies_leak_no_paths_and_no_model_list(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        one = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}'
        unknown = client.post("/v2/models/nope/infer", content=one)
        broken = client.post(
            "/v2/repository/models/leaky/load",
            content=orjson.dumps(
                {"parameters": {"file:1/model.onnx": base64.b64encode(b"junk").decode()}}
            ),
        )
        index = client.post("/v2/repository/index", content=b"{}")
    assert unknown.status_code == 404
    assert unknown.json()["error"].startswith("Request for unknown model: 'nope' is not found")
    assert broken.status_code == 400 and "failed to load 'leaky'" in broken.json()["error"]
    for text in (unknown.text, broken.text, index.text):
        assert "/tmp" not in text and "/root" not in text and "pytest-" not in text, text[:300]
    assert "identity_fp32" not in unknown.text and "add_sub" not in broken.text


def test_health_routes_take_only_get_and_head(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert client.get(path).status_code == 200
            assert client.head(path).status_code == 200
            for method in ("TRACE", "POST", "DELETE", "PUT"):
                response = client.request(method, path)
                assert response.status_code == 405, (method, path)
                assert response.headers["allow"] == "GET, HEAD"
        infer_get = client.get("/v2/models/mlp/infer")
        assert infer_get.status_code == 405 and infer_get.headers["allow"] == "POST"


def test_raw_and_typed_contents_together_are_refused(server: ServerProcess) -> None:
    request = pb.ModelInferRequest(model_name="identity_int32")
    tensor = request.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 2])
    tensor.contents.int_contents.extend([1, 2])
    request.raw_input_contents.append(np.array([[3, 4]], np.int32).tobytes())
    with pytest.raises(grpc.RpcError) as info:
        _stub(server).ModelInfer(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "both raw_input_contents and typed contents" in info.value.details()


def test_sequence_requests_are_refused_not_ignored(server: ServerProcess) -> None:
    data = np.ones((1, 4), np.float32)
    http = httpclient.InferenceServerClient(server.http_url)
    inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
    inp.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException, match="sequence parameters"):
        http.infer("identity_fp32", [inp], sequence_id=7, sequence_start=True)
    http.close()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    ginp = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
    ginp.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException) as info:
        client.infer("identity_fp32", [ginp], sequence_id=7, sequence_end=True)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    # Outside a sequence (what clients send by default) requests are served.
    assert client.infer("identity_fp32", [ginp]).as_numpy("OUTPUT0").tolist() == data.tolist()
    client.close()


def test_nan_and_inf_round_trip_through_json(server: ServerProcess) -> None:
    data = np.array([[np.nan, np.inf, -np.inf, 1.5]], np.float32)
    client = httpclient.InferenceServerClient(server.http_url)
    inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
    inp.set_data_from_numpy(data, binary_data=False)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=False)
    result = client.infer("identity_fp32", [inp], outputs=[out]).as_numpy("OUTPUT0")
    client.close()
    np.testing.assert_array_equal(result, data)  # NaN == NaN here, Inf kept


def test_numbers_beyond_float32_are_refused(server: ServerProcess) -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [1e39, 1]}]}
    )
    response = httpx.post(
        f"{server.base_url}/v2/models/identity_fp32/infer", content=body, timeout=30
    )
    assert response.status_code == 400 and "out of range for FP32" in response.json()["error"]


def test_cuda_shared_memory_is_a_clear_refusal(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/v2/cudasharedmemory/status", timeout=30)
    assert response.status_code == 400 and "CUDA shared memory" in response.json()["error"]
