"""The gRPC servicer in process (grpc.aio on a free port) over a real, started DataPlane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest

from amlpkg.runtime.grpc import create_grpc_server
from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from tests.runtime import toy_models
from tests.runtime.test_rest_app import TRACEPARENT, RecordingDataPlane

T = TypeVar("T")
Stub = pb_grpc.GRPCInferenceServiceStub


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """add_sub with batching, so statistics and config have something to show."""
    root = tmp_path_factory.mktemp("grpc-servicer")
    toy_models.save(toy_models.add_sub_model(width=4), root, "add_sub")
    (root / "add_sub" / "config.yaml").write_text(
        "max_batch_size: 4\ndynamic_batching: {max_queue_delay_microseconds: 100}\n"
    )
    # Waits long enough for every request of a stream to join the first one's batch.
    toy_models.save(toy_models.identity_model("FP32"), root, "slow_batch")
    (root / "slow_batch" / "config.yaml").write_text(
        "max_batch_size: 8\ndynamic_batching:"
        " {max_queue_delay_microseconds: 500000, idle_runs_at_once: false}\n"
    )
    return root


def run(
    repo: Path,
    scenario: Callable[[Stub, RecordingDataPlane], Awaitable[T]],
    token: str | None = None,
) -> T:
    """Serve a started data plane over grpc.aio on port 0 and run ``scenario``."""

    async def main() -> T:
        dp = RecordingDataPlane.from_repository(repo)
        assert isinstance(dp, RecordingDataPlane)
        dp.seen = []
        await dp.start()
        server, port = create_grpc_server(
            dp, host="127.0.0.1", port=0, max_message_size=1 << 20, auth_token=token
        )
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await scenario(Stub(channel), dp)
        finally:
            await server.stop(None)
            await dp.stop(drain_timeout=5)

    return asyncio.run(main())


def _request(a: np.ndarray, b: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="add_sub")
    for name, array in (("INPUT0", a), ("INPUT1", b)):
        request.inputs.add(name=name, datatype="FP32", shape=array.shape)
        request.raw_input_contents.append(array.tobytes())
    return request


def test_infer_config_statistics_and_trace_context(repo: Path) -> None:
    a, b = np.ones((2, 4), np.float32), np.full((2, 4), 2, np.float32)

    async def scenario(stub: Stub, dp: RecordingDataPlane) -> Any:
        response = await stub.ModelInfer(_request(a, b), metadata=[("traceparent", TRACEPARENT)])
        config = (await stub.ModelConfig(pb.ModelConfigRequest(name="add_sub"))).config
        stats = await stub.ModelStatistics(pb.ModelStatisticsRequest(name="add_sub"))
        index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
        return response, config, stats, index, dp.seen

    response, config, stats, index, seen = run(repo, scenario)
    assert [o.name for o in response.outputs] == ["OUTPUT0", "OUTPUT1"]
    np.testing.assert_array_equal(
        np.frombuffer(response.raw_output_contents[1], np.float32), np.full(8, -1)
    )
    assert (
        config.max_batch_size == 4 and config.dynamic_batching.max_queue_delay_microseconds == 100
    )
    assert [i.name for i in config.input] == ["INPUT0", "INPUT1"]
    assert stats.model_stats[0].inference_count == 2
    assert ("add_sub", "1", "READY") in [(m.name, m.version, m.state) for m in index.models]
    assert seen == [{"traceparent": TRACEPARENT}]


def test_stream_answers_each_request_and_reports_errors_inline(repo: Path) -> None:
    a = np.ones((1, 4), np.float32)

    async def requests() -> AsyncIterator[pb.ModelInferRequest]:
        for request_id, model, b in (
            ("r1", "add_sub", a),
            ("r2", "nope", a),
            ("r3", "add_sub", 3 * a),
        ):
            request = _request(a, b)
            request.model_name, request.id = model, request_id
            yield request

    async def scenario(stub: Stub, dp: RecordingDataPlane) -> list[Any]:
        return [r async for r in stub.ModelStreamInfer(requests())]

    by_id = {r.infer_response.id: r for r in run(repo, scenario)}
    assert sorted(by_id) == ["r1", "r2", "r3"]
    assert (
        np.frombuffer(by_id["r1"].infer_response.raw_output_contents[0], np.float32).tolist()
        == [2] * 4
    )
    assert "Request for unknown model: 'nope' is not found" in by_id["r2"].error_message
    assert (
        np.frombuffer(by_id["r3"].infer_response.raw_output_contents[1], np.float32).tolist()
        == [-2] * 4
    )
    assert by_id["r1"].error_message == by_id["r3"].error_message == ""


def test_stream_requests_share_a_dynamic_batch(repo: Path) -> None:
    """Requests of one stream run concurrently, so they join one batch."""
    x = np.ones((1, 4), np.float32)

    async def requests() -> AsyncIterator[pb.ModelInferRequest]:
        for i in range(4):
            request = pb.ModelInferRequest(model_name="slow_batch", id=str(i))
            request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
            request.raw_input_contents.append((x * i).tobytes())
            yield request

    async def scenario(stub: Stub, dp: RecordingDataPlane) -> tuple[list[Any], Any]:
        answers = [r async for r in stub.ModelStreamInfer(requests())]
        stats = await stub.ModelStatistics(pb.ModelStatisticsRequest(name="slow_batch"))
        return answers, stats.model_stats[0]

    answers, stats = run(repo, scenario)
    for answer in answers:
        values = np.frombuffer(answer.infer_response.raw_output_contents[0], np.float32)
        assert values.tolist() == [float(answer.infer_response.id)] * 4  # each got its own rows
    assert stats.inference_count == 4
    assert stats.execution_count == 1


def test_load_unload_and_auth(repo: Path) -> None:
    async def scenario(stub: Stub, dp: RecordingDataPlane) -> list[Any]:
        key = [("x-api-key", "k1")]
        out: list[Any] = [(await stub.ServerReady(pb.ServerReadyRequest())).ready]
        try:
            await stub.ModelReady(pb.ModelReadyRequest(name="add_sub"))
        except grpc.aio.AioRpcError as exc:
            out.append(exc.code())
        await stub.RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(model_name="add_sub"), metadata=key
        )
        out.append(
            (await stub.ModelReady(pb.ModelReadyRequest(name="add_sub"), metadata=key)).ready
        )
        await stub.RepositoryModelLoad(
            pb.RepositoryModelLoadRequest(model_name="add_sub"), metadata=key
        )
        out.append(
            (await stub.ModelReady(pb.ModelReadyRequest(name="add_sub"), metadata=key)).ready
        )
        return out

    assert run(repo, scenario, token="k1") == [True, grpc.StatusCode.UNAUTHENTICATED, False, True]
