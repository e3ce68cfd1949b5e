"""The data plane in-process: metadata, config, statistics, infer and validation, on real ORT."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort
import pytest

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import (
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    UnavailableError,
)
from amlpkg.runtime.types import InferInput, InferRequest
from tests.runtime.toy_models import (
    add_sub_model,
    identity_model,
    infer_request,
    mlp_model,
    sample,
    save,
    write_config,
)

T = TypeVar("T")

DATATYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


def with_dataplane(repo: Path, body: Callable[[DataPlane], Awaitable[T]]) -> T:
    """Start a data plane over ``repo``, run ``body`` and always stop it."""

    async def main() -> T:
        dp = DataPlane.from_repository(repo, environ={})
        await dp.start()
        try:
            return await body(dp)
        finally:
            await dp.stop(drain_timeout=5)

    return asyncio.run(main())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    save(add_sub_model(), tmp_path, "simple")
    write_config(tmp_path, "simple", "max_batch_size: 8\n")
    save(mlp_model(), tmp_path, "mlp")
    return tmp_path


def test_infer_every_datatype_round_trips(tmp_path: Path) -> None:
    for datatype in DATATYPES:
        save(identity_model(datatype), tmp_path, f"id_{datatype.lower()}")

    async def body(dp: DataPlane) -> None:
        for datatype in DATATYPES:
            data = sample(datatype, (3, 4))
            response = await dp.infer(infer_request(f"id_{datatype.lower()}", {"INPUT0": data}))
            (out,) = response.outputs
            assert (out.name, out.datatype, out.shape) == ("OUTPUT0", datatype, (3, 4))
            assert out.data.dtype == data.dtype, datatype
            assert np.array_equal(out.data, data), datatype

    with_dataplane(tmp_path, body)


def test_infer_equals_in_process_onnxruntime(repo: Path) -> None:
    x = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    expected = ort.InferenceSession(str(repo / "mlp/1/model.onnx")).run(None, {"x": x})[0]

    async def body(dp: DataPlane) -> None:
        response = await dp.infer(infer_request("mlp", {"x": x}))
        assert response.model_version == "1"
        np.testing.assert_allclose(response.outputs[0].data, expected, rtol=1e-6)

    with_dataplane(repo, body)


def test_requested_outputs_only_and_in_order(repo: Path) -> None:
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.float32)

    async def body(dp: DataPlane) -> None:
        both = await dp.infer(infer_request("simple", {"INPUT0": a, "INPUT1": b}))
        assert [o.name for o in both.outputs] == ["OUTPUT0", "OUTPUT1"]
        only = await dp.infer(
            infer_request("simple", {"INPUT0": a, "INPUT1": b}, outputs=["OUTPUT1"])
        )
        assert [o.name for o in only.outputs] == ["OUTPUT1"]
        np.testing.assert_array_equal(only.outputs[0].data, a - b)

    with_dataplane(repo, body)


def test_model_metadata_reports_dynamic_dims_and_providers(repo: Path) -> None:
    async def body(dp: DataPlane) -> None:
        meta = await dp.model_metadata("simple")
        assert meta.platform == "onnxruntime_onnx"
        assert meta.versions == ("1",)
        assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [
            ("INPUT0", "FP32", (-1, 16)),
            ("INPUT1", "FP32", (-1, 16)),
        ]
        assert [t.name for t in meta.outputs] == ["OUTPUT0", "OUTPUT1"]
        assert meta.parameters == {"execution_providers": ["cpu"], "provider_fallback": False}

    with_dataplane(repo, body)


def test_model_config_has_tritons_shape(tmp_path: Path) -> None:
    save(add_sub_model("INT32"), tmp_path, "simple")
    write_config(
        tmp_path,
        "simple",
        "max_batch_size: 8\ninstance_count: 2\n"
        "dynamic_batching: {max_queue_delay_microseconds: 100, preferred_batch_size: [4, 8]}\n",
    )
    save(identity_model("BYTES", ("n",)), tmp_path, "text")

    async def body(dp: DataPlane) -> None:
        config = await dp.model_config("simple")
        assert config["name"] == "simple"
        assert (config["platform"], config["backend"]) == ("onnxruntime_onnx", "onnxruntime")
        assert config["max_batch_size"] == 8
        # With max_batch_size > 0 the batch dim is implicit, as in Triton.
        assert config["input"][0] == {
            "name": "INPUT0",
            "data_type": "TYPE_INT32",
            "dims": [16],
            "format": "FORMAT_NONE",
        }
        assert config["output"][1] == {"name": "OUTPUT1", "data_type": "TYPE_INT32", "dims": [16]}
        assert config["dynamic_batching"] == {
            "preferred_batch_size": [4, 8],
            "max_queue_delay_microseconds": 100,
            "default_queue_policy": {"max_queue_size": 1024},
        }
        assert config["instance_group"] == [{"name": "simple_0", "kind": "KIND_CPU", "count": 2}]
        assert config["version_policy"] == {"latest": {"num_versions": 1}}
        text = await dp.model_config("text")
        assert text["max_batch_size"] == 0
        assert "dynamic_batching" not in text
        assert text["input"][0]["data_type"] == "TYPE_STRING"
        assert text["input"][0]["dims"] == [-1]

    with_dataplane(tmp_path, body)


def test_model_config_parses_into_the_triton_proto(repo: Path) -> None:
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2

    config = with_dataplane(repo, lambda dp: dp.model_config("simple"))
    message = json_format.ParseDict(config, model_config_pb2.ModelConfig())
    assert message.max_batch_size == 8
    assert list(message.input[0].dims) == [16]


def test_statistics_count_samples_and_executions(repo: Path) -> None:
    a = np.ones((3, 16), dtype=np.float32)

    async def body(dp: DataPlane) -> dict:
        await dp.infer(infer_request("simple", {"INPUT0": a, "INPUT1": a}))
        await dp.infer(infer_request("simple", {"INPUT0": a[:1], "INPUT1": a[:1]}))
        with pytest.raises(InvalidInputError):
            await dp.infer(infer_request("simple", {"INPUT0": a}))
        everything = await dp.model_statistics()
        assert {s["name"] for s in everything["model_stats"]} == {"simple", "mlp"}
        return await dp.model_statistics("simple", "1")

    stats = with_dataplane(repo, body)
    (entry,) = stats["model_stats"]
    assert (entry["name"], entry["version"]) == ("simple", "1")
    assert entry["inference_count"] == 4  # samples, not requests
    assert entry["execution_count"] == 2
    assert entry["last_inference"] > 1_600_000_000_000  # milliseconds since the epoch
    inference = entry["inference_stats"]
    assert inference["success"]["count"] == 2
    assert inference["fail"]["count"] == 1
    assert inference["compute_infer"]["count"] == 2
    assert inference["compute_infer"]["ns"] > 0
    assert {b["batch_size"] for b in entry["batch_stats"]} == {1, 3}


def test_server_metadata_and_health(repo: Path) -> None:
    async def body(dp: DataPlane) -> None:
        meta = await dp.server_metadata()
        assert meta.name == "amlpkg"
        assert "model_repository" in meta.extensions
        assert "classification" not in meta.extensions
        assert await dp.live() and await dp.ready()
        assert await dp.model_ready("simple")
        assert await dp.model_ready("simple", "1")
        assert not await dp.model_ready("simple", "2")
        assert not await dp.model_ready("simple", "0")
        assert not await dp.model_ready("nope")

    with_dataplane(repo, body)


def _x(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@pytest.mark.parametrize(
    ("request_", "error", "needle"),
    [
        (
            infer_request("nope", {"x": _x((1, 64))}),
            ModelNotFoundError,
            "Request for unknown model: 'nope' is not found",
        ),
        (
            infer_request("mlp", {"x": _x((1, 64))}, version="9"),
            ModelNotFoundError,
            "version 9 is not found",
        ),
        (
            infer_request("mlp", {"x": _x((1, 64)), "z": _x((1, 2))}),
            InvalidInputError,
            "model 'mlp' has no input 'z'",
        ),
        (infer_request("simple", {"INPUT0": _x((1, 16))}), InvalidInputError, "missing input"),
        (
            infer_request("mlp", {"x": _x((1, 64), np.int32)}),
            InvalidInputError,
            "model 'mlp' input 'x': expected datatype FP32, got INT32",
        ),
        (
            infer_request("mlp", {"x": _x((1, 63))}),
            InvalidInputError,
            "input 'x': expected shape [-1, 64] (-1 = any size), got [1, 63]",
        ),
        (
            infer_request("mlp", {"x": _x((64,))}),
            InvalidInputError,
            "expected shape [-1, 64]",
        ),
        (
            infer_request("simple", {"INPUT0": _x((9, 16)), "INPUT1": _x((9, 16))}),
            InvalidInputError,
            "batch of 9 samples is over max_batch_size 8",
        ),
        (
            infer_request("simple", {"INPUT0": _x((2, 16)), "INPUT1": _x((3, 16))}),
            InvalidInputError,
            "disagree on the batch",
        ),
        (
            infer_request("mlp", {"x": _x((1, 64))}, outputs=["nope"]),
            InvalidInputError,
            "model 'mlp' has no output 'nope'",
        ),
    ],
)
def test_bad_requests_get_errors_that_name_what_to_fix(
    repo: Path, request_: InferRequest, error: type[Exception], needle: str
) -> None:
    async def body(dp: DataPlane) -> None:
        with pytest.raises(error) as caught:
            await dp.infer(request_)
        assert needle in str(caught.value)

    with_dataplane(repo, body)


def test_element_count_mismatch_is_an_input_error(repo: Path) -> None:
    bad = InferRequest("mlp", None, [InferInput("x", "FP32", (1, 64), np.zeros(10, np.float32))])

    async def body(dp: DataPlane) -> None:
        with pytest.raises(InvalidInputError, match="needs 64 elements, the data has 10"):
            await dp.infer(bad)

    with_dataplane(repo, body)


def test_unloaded_model_is_not_ready(repo: Path) -> None:
    async def body(dp: DataPlane) -> None:
        await dp.unload_model("mlp")
        with pytest.raises(ModelNotReadyError, match="'mlp'"):
            await dp.infer(infer_request("mlp", {"x": _x((1, 64))}))
        with pytest.raises(ModelNotReadyError):
            await dp.model_metadata("mlp")

    with_dataplane(repo, body)


def test_stop_refuses_new_requests_and_finishes_running_ones(repo: Path) -> None:
    async def main() -> None:
        dp = DataPlane.from_repository(repo, environ={})
        await dp.start()
        x = np.ones((2, 64), np.float32)
        running = asyncio.ensure_future(dp.infer(infer_request("mlp", {"x": x})))
        await asyncio.sleep(0)  # the request is accepted before the stop begins
        stopping = asyncio.ensure_future(dp.stop(drain_timeout=10))
        await asyncio.sleep(0)
        with pytest.raises(UnavailableError, match="shutting down"):
            await dp.infer(infer_request("mlp", {"x": x}))
        response = await running
        assert response.outputs[0].shape == (2, 10)
        await stopping
        assert not await dp.ready()

    asyncio.run(main())


def test_bytes_that_are_not_utf8_text_are_an_input_error(tmp_path: Path) -> None:
    save(identity_model("BYTES"), tmp_path, "text")
    write_config(tmp_path, "text", "max_batch_size: 4\ndynamic_batching: {}\n")

    async def body(dp: DataPlane) -> None:
        good = np.array([[b"a", b"b", b"c", b"d"]], dtype=object)
        bad = np.array([[b"\xff", b"b", b"c", b"d"]], dtype=object)
        results = await asyncio.gather(
            dp.infer(infer_request("text", {"INPUT0": good})),
            dp.infer(infer_request("text", {"INPUT0": bad})),
            return_exceptions=True,
        )
        assert isinstance(results[1], InvalidInputError)
        assert "model 'text' input 'INPUT0': BYTES elements must be UTF-8" in str(results[1])
        assert not isinstance(results[0], BaseException)  # its neighbour is unharmed
        assert results[0].outputs[0].data.tolist() == [[b"a", b"b", b"c", b"d"]]

    with_dataplane(tmp_path, body)
