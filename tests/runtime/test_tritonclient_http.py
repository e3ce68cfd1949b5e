"""The real tritonclient.http (JSON and binary tensors) against a real server process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.runtime.conftest import IDENTITY_TYPES, ServerProcess, identity_name
from tests.runtime.toy_models import sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> httpclient.InferenceServerClient:
    """A tritonclient HTTP client of the shared server."""
    with httpclient.InferenceServerClient(server.http_url) as c:
        yield c


def ort_run(
    repo: Path, name: str, version: int, feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The same model run in-process by ONNX Runtime: the reference answer."""
    session = ort.InferenceSession(str(repo / name / str(version) / "model.onnx"))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _input(name: str, array: np.ndarray, datatype: str, binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_server_and_model_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "amlpkg"
    assert {"binary_tensor_data", "model_repository", "statistics"} <= set(meta["extensions"])
    model = client.get_model_metadata("add_sub")
    assert model["name"] == "add_sub" and model["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in model["inputs"]] == ["INPUT0", "INPUT1"]
    assert model["inputs"][0]["shape"] == [-1, 16] and model["inputs"][0]["datatype"] == "FP32"
    assert client.is_model_ready("add_sub")


def test_model_config(client: httpclient.InferenceServerClient) -> None:
    config = client.get_model_config("add_sub")
    assert config["name"] == "add_sub" and config["max_batch_size"] == 8
    assert [i["name"] for i in config["input"]] == ["INPUT0", "INPUT1"]
    assert config["input"][0]["data_type"] == "TYPE_FP32" and config["input"][0]["dims"] == [16]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", IDENTITY_TYPES)
def test_infer_every_datatype(
    client: httpclient.InferenceServerClient, datatype: str, binary: bool
) -> None:
    data = sample(datatype)
    result = client.infer(
        identity_name(datatype),
        [_input("INPUT0", data, datatype, binary)],
        outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)],
    )
    out = result.as_numpy("OUTPUT0")
    assert out.shape == data.shape
    if datatype == "BYTES":
        # JSON answers carry BYTES as text, the binary extension as bytes.
        assert [x.encode() if isinstance(x, str) else bytes(x) for x in out.ravel()] == list(
            data.ravel()
        )
    else:
        assert out.dtype == data.dtype
        np.testing.assert_array_equal(out, data)
    assert result.get_output("OUTPUT0")["datatype"] == datatype


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_requested_output_only_and_equal_to_onnxruntime(
    client: httpclient.InferenceServerClient, model_repo: Path, binary: bool
) -> None:
    a, b = sample("FP32", (3, 16)), sample("FP32", (3, 16)) * 2
    result = client.infer(
        "add_sub",
        [_input("INPUT0", a, "FP32", binary), _input("INPUT1", b, "FP32", binary)],
        outputs=[httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary)],
        request_id="req-42",
    )
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["OUTPUT1"]
    assert response["id"] == "req-42"
    assert result.as_numpy("OUTPUT0") is None
    expected = ort_run(model_repo, "add_sub", 1, {"INPUT0": a, "INPUT1": b})["OUTPUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), expected)


def test_version_selection(client: httpclient.InferenceServerClient, model_repo: Path) -> None:
    x = sample("FP32", (4, 64))
    got = {}
    for version in ("1", "2"):
        result = client.infer("mlp", [_input("x", x, "FP32", True)], model_version=version)
        assert result.get_response()["model_version"] == version
        got[version] = result.as_numpy("y")
        expected = ort_run(model_repo, "mlp", int(version), {"x": x})["y"]
        np.testing.assert_allclose(got[version], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got["1"], got["2"])
    assert client.get_model_metadata("mlp")["versions"] == ["1", "2"]


def test_load_and_unload_through_the_repository_api(
    client: httpclient.InferenceServerClient,
) -> None:
    index = {(m["name"], m.get("version")): m["state"] for m in client.get_model_repository_index()}
    assert index[("spare", "1")] == "READY"
    client.unload_model("spare")
    assert not client.is_model_ready("spare")
    with pytest.raises(InferenceServerException):
        client.infer("spare", [_input("INPUT0", sample("FP32"), "FP32", True)])
    client.load_model("spare")
    assert client.is_model_ready("spare")
    result = client.infer("spare", [_input("INPUT0", sample("FP32"), "FP32", True)])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), sample("FP32"))


def test_statistics_count_inferences(client: httpclient.InferenceServerClient) -> None:
    def count() -> int:
        stats = client.get_inference_statistics("identity_int8")["model_stats"]
        return int(stats[0].get("inference_count", 0))

    before = count()
    client.infer(identity_name("INT8"), [_input("INPUT0", sample("INT8", (3, 4)), "INT8", True)])
    assert count() == before + 3
    everything = client.get_inference_statistics()["model_stats"]
    assert {"add_sub", "mlp", "identity_int8"} <= {s["name"] for s in everything}


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(client: httpclient.InferenceServerClient, algorithm: str) -> None:
    data = sample("FP32", (8, 4))
    result = client.infer(
        identity_name("FP32"),
        [_input("INPUT0", data, "FP32", True)],
        request_compression_algorithm=algorithm,
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
