"""The real tritonclient.grpc against a real server process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.runtime.conftest import IDENTITY_TYPES, ServerProcess, identity_name
from tests.runtime.test_tritonclient_http import ort_run
from tests.runtime.toy_models import sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[grpcclient.InferenceServerClient]:
    """A tritonclient gRPC client of the shared server."""
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        yield c


def _input(name: str, array: np.ndarray, datatype: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def test_server_and_model_metadata(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta.name == "amlpkg" and "binary_tensor_data" in meta.extensions
    model = client.get_model_metadata("add_sub")
    assert model.platform == "onnxruntime_onnx"
    assert [(i.name, i.datatype, list(i.shape)) for i in model.inputs] == [
        ("INPUT0", "FP32", [-1, 16]),
        ("INPUT1", "FP32", [-1, 16]),
    ]
    assert client.is_model_ready("add_sub") and not client.is_model_ready("no_such_model")


def test_model_config(client: grpcclient.InferenceServerClient) -> None:
    config = client.get_model_config("add_sub").config
    assert config.name == "add_sub" and config.max_batch_size == 8
    assert [i.name for i in config.input] == ["INPUT0", "INPUT1"]
    assert list(config.input[0].dims) == [16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 200


@pytest.mark.parametrize("datatype", IDENTITY_TYPES)
def test_infer_every_datatype(client: grpcclient.InferenceServerClient, datatype: str) -> None:
    data = sample(datatype)
    result = client.infer(identity_name(datatype), [_input("INPUT0", data, datatype)])
    out = result.as_numpy("OUTPUT0")
    assert out.shape == data.shape
    if datatype == "BYTES":
        assert list(out.ravel()) == list(data.ravel())
    else:
        assert out.dtype == data.dtype
        np.testing.assert_array_equal(out, data)


def test_requested_output_only_and_equal_to_onnxruntime(
    client: grpcclient.InferenceServerClient, model_repo: Path
) -> None:
    a, b = sample("FP32", (3, 16)), sample("FP32", (3, 16)) * 2
    result = client.infer(
        "add_sub",
        [_input("INPUT0", a, "FP32"), _input("INPUT1", b, "FP32")],
        outputs=[grpcclient.InferRequestedOutput("OUTPUT0")],
        request_id="g-1",
    )
    response = result.get_response()
    assert [o.name for o in response.outputs] == ["OUTPUT0"] and response.id == "g-1"
    expected = ort_run(model_repo, "add_sub", 1, {"INPUT0": a, "INPUT1": b})["OUTPUT0"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), expected)


def test_version_selection(client: grpcclient.InferenceServerClient, model_repo: Path) -> None:
    x = sample("FP32", (4, 64))
    got = {}
    for version in ("1", "2"):
        result = client.infer("mlp", [_input("x", x, "FP32")], model_version=version)
        assert result.get_response().model_version == version
        got[version] = result.as_numpy("y")
        expected = ort_run(model_repo, "mlp", int(version), {"x": x})["y"]
        np.testing.assert_allclose(got[version], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got["1"], got["2"])


def test_streaming_infer(client: grpcclient.InferenceServerClient) -> None:
    results: list[object] = []
    client.start_stream(callback=lambda result, error: results.append(error or result))
    try:
        data = sample("INT64")
        client.async_stream_infer(identity_name("INT64"), [_input("INPUT0", data, "INT64")])
        client.async_stream_infer("no_such_model", [_input("INPUT0", data, "INT64")])
    finally:
        client.stop_stream()
    assert len(results) == 2
    # Answers come back as each request finishes, so the fast failure may come first.
    failed = next(r for r in results if isinstance(r, InferenceServerException))
    ok = next(r for r in results if not isinstance(r, InferenceServerException))
    np.testing.assert_array_equal(ok.as_numpy("OUTPUT0"), data)  # type: ignore[attr-defined]
    assert isinstance(failed, InferenceServerException)
    assert "no_such_model" in failed.message()


def test_load_and_unload_through_the_repository_api(
    client: grpcclient.InferenceServerClient,
) -> None:
    # A different model than the HTTP test's, so the two never race.
    name = identity_name("UINT64")
    states = {(m.name, m.version): m.state for m in client.get_model_repository_index().models}
    assert states[(name, "1")] == "READY"
    client.unload_model(name)
    assert not client.is_model_ready(name)
    with pytest.raises(InferenceServerException) as info:
        client.infer(name, [_input("INPUT0", sample("UINT64"), "UINT64")])
    assert info.value.status() == "StatusCode.UNAVAILABLE"
    client.load_model(name)
    assert client.is_model_ready(name)
    result = client.infer(name, [_input("INPUT0", sample("UINT64"), "UINT64")])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), sample("UINT64"))


def test_statistics(client: grpcclient.InferenceServerClient) -> None:
    def count() -> int:
        return int(client.get_inference_statistics("identity_fp64").model_stats[0].inference_count)

    before = count()
    client.infer(identity_name("FP64"), [_input("INPUT0", sample("FP64", (5, 4)), "FP64")])
    assert count() == before + 5
    stats = client.get_inference_statistics("identity_fp64").model_stats[0]
    assert stats.inference_stats.success.count >= 1 and stats.inference_stats.success.ns > 0
