"""Bad input over gRPC against a real server: status code and message."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from tests.runtime.conftest import MAX_REQUEST_SIZE, ServerProcess

pytestmark = pytest.mark.slow
Tensor = pb.ModelInferRequest.InferInputTensor


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    """A raw stub of our generated code (to send what tritonclient never would)."""
    with grpc.insecure_channel(server.grpc_url) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def _raw(shape: tuple[int, ...], dtype: type = np.float32) -> bytes:
    return np.ones(shape, dtype).tobytes()


def _add_sub(
    *tensors: tuple[str, str, tuple[int, ...], bytes], **kwargs: object
) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(
        model_name=str(kwargs.pop("model", "add_sub")),
        inputs=[Tensor(name=n, datatype=d, shape=s) for n, d, s, _ in tensors],
        raw_input_contents=[raw for *_, raw in tensors],
        **kwargs,
    )


GOOD = ("INPUT0", "FP32", (1, 16), _raw((1, 16)))
GOOD1 = ("INPUT1", "FP32", (1, 16), _raw((1, 16)))
CASES = [
    (
        "unknown model",
        _add_sub(GOOD, GOOD1, model="nope"),
        grpc.StatusCode.NOT_FOUND,
        "Request for unknown model: 'nope' is not found",
    ),
    (
        "unknown version",
        _add_sub(GOOD, GOOD1, model_version="9"),
        grpc.StatusCode.NOT_FOUND,
        "version 9 is not found",
    ),
    (
        "unknown input",
        _add_sub(GOOD, ("INPUTX", "FP32", (1, 16), _raw((1, 16)))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "no input 'INPUTX'",
    ),
    (
        "wrong shape",
        _add_sub(
            ("INPUT0", "FP32", (1, 15), _raw((1, 15))), ("INPUT1", "FP32", (1, 15), _raw((1, 15)))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expected shape [-1, 16]",
    ),
    (
        "wrong datatype",
        _add_sub(("INPUT0", "FP64", (1, 16), _raw((1, 16), np.float64)), GOOD1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expected datatype FP32, got FP64",
    ),
    (
        "wrong element count",
        _add_sub(("INPUT0", "FP32", (1, 16), _raw((1, 15))), GOOD1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "got 60 bytes of FP32 data, expected 64",
    ),
    (
        "raw contents do not match inputs",
        pb.ModelInferRequest(
            model_name="add_sub",
            inputs=[Tensor(name="INPUT0", datatype="FP32", shape=[1, 16])],
            raw_input_contents=[b"", b""],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents has 2 entries for 1 inputs",
    ),
    (
        "unknown datatype",
        _add_sub(("INPUT0", "FP8", (1, 16), b""), GOOD1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown datatype 'FP8'",
    ),
]


@pytest.mark.parametrize(
    ("request_", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_requests_get_the_right_status(
    stub: pb_grpc.GRPCInferenceServiceStub,
    request_: pb.ModelInferRequest,
    code: grpc.StatusCode,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request_, timeout=30)
    assert info.value.code() == code
    assert message in info.value.details()


def test_message_over_the_limit_is_resource_exhausted(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    big = np.ones((1, MAX_REQUEST_SIZE // 4 + 16), np.float32)
    request = _add_sub(("INPUT0", "FP32", big.shape, big.tobytes()))
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_typed_contents_are_accepted(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    request = pb.ModelInferRequest(model_name="identity_int32")
    tensor = request.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 4])
    tensor.contents.int_contents.extend([1, -2, 3, -4])
    response = stub.ModelInfer(request, timeout=30)
    assert np.frombuffer(response.raw_output_contents[0], np.int32).tolist() == [1, -2, 3, -4]


def test_unsupported_extensions_are_unimplemented(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.CudaSharedMemoryStatus(pb.CudaSharedMemoryStatusRequest(), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "shared memory" in info.value.details()


def test_model_config_of_unknown_model(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelConfig(pb.ModelConfigRequest(name="nope"), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_full_queue_is_unavailable(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    def request(n: int) -> pb.ModelInferRequest:
        return _add_sub(("INPUT0", "FP32", (1, n), _raw((1, n))), model="tiny_queue")

    results: dict[int, object] = {}
    threads = []
    for n in (1, 2):
        thread = threading.Thread(
            target=lambda n=n: results.__setitem__(n, stub.ModelInfer(request(n), timeout=30))
        )
        thread.start()
        threads.append(thread)
        time.sleep(0.3)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request(3), timeout=30)
    for thread in threads:
        thread.join(30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "queue is full" in info.value.details()
    assert sorted(results) == [1, 2]
