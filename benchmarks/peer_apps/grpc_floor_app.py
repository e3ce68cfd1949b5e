"""The least a Python gRPC server can cost: the V2 inference API on bare grpcio.

A reference point, not a server to deploy: one ONNX Runtime session run inline in each
``ModelInfer`` call (no batching, no validation, no statistics kept, raw contents
only), so that perf_analyzer measures grpcio's own cost per call on this machine.
``--mode aio`` is grpc.aio on an asyncio loop (what the runtime serves on);
``--mode sync`` is ``grpc.server`` with a thread pool, the other choice grpcio offers.
The harness reads readiness over HTTP, so a small HTTP thread answers it.

    python benchmarks/peer_apps/grpc_floor_app.py --model-path m.onnx --model-name mlp \\
        --sample-shape 64 --grpc-port 8001 --http-port 8000 --mode sync
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort

from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from amlpkg.runtime.protocol import model_config_pb2 as mc

MAX_BATCH_SIZE = 32


class Floor:
    """The model and the answers every RPC but inference gives."""

    def __init__(self, path: str, name: str, shape: tuple[int, ...]) -> None:
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.name, self.shape = name, shape
        self.input = self.session.get_inputs()[0].name
        out = self.session.get_outputs()[0]
        self.output = out.name
        self.out_dims = [int(d) for d in out.shape[1:]]

    def infer(self, request: Any) -> Any:
        raw = request.raw_input_contents[0]
        shape = tuple(int(d) for d in request.inputs[0].shape)
        array = np.frombuffer(raw, dtype=np.float32).reshape(shape)
        (result,) = self.session.run([self.output], {self.input: array})
        response = pb.ModelInferResponse(model_name=self.name, model_version="1", id=request.id)
        response.outputs.add(name=self.output, datatype="FP32", shape=result.shape)
        response.raw_output_contents.append(result.tobytes())
        return response

    def metadata(self) -> Any:
        response = pb.ModelMetadataResponse(name=self.name, versions=["1"], platform="onnx")
        response.inputs.add(name=self.input, datatype="FP32", shape=[-1, *self.shape])
        response.outputs.add(name=self.output, datatype="FP32", shape=[-1, *self.out_dims])
        return response

    def config(self) -> Any:
        config = mc.ModelConfig(
            name=self.name, platform="onnxruntime_onnx", max_batch_size=MAX_BATCH_SIZE
        )
        config.input.add(name=self.input, data_type=mc.TYPE_FP32, dims=list(self.shape))
        config.output.add(name=self.output, data_type=mc.TYPE_FP32, dims=self.out_dims)
        return pb.ModelConfigResponse(config=config)

    def statistics(self) -> Any:
        response = pb.ModelStatisticsResponse()
        response.model_stats.add(name=self.name, version="1")
        return response


class SyncServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Each call on a thread of the server's pool."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="grpcio-floor", version="0")

    def ModelMetadata(self, request: Any, context: Any) -> Any:
        return self.floor.metadata()

    def ModelConfig(self, request: Any, context: Any) -> Any:
        return self.floor.config()

    def ModelStatistics(self, request: Any, context: Any) -> Any:
        return self.floor.statistics()

    def ModelInfer(self, request: Any, context: Any) -> Any:
        return self.floor.infer(request)


class AioServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Each call a coroutine on the event loop; ONNX Runtime inline, as the floor."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="grpcio-floor", version="0")

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        return self.floor.metadata()

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        return self.floor.config()

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        return self.floor.statistics()

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        return self.floor.infer(request)


def _ready_http(port: int) -> None:
    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()


async def _serve_aio(floor: Floor, port: int, ready_port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(AioServicer(floor), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    _ready_http(ready_port)  # ready only once the gRPC port listens
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--sample-shape", required=True, help="e.g. 3,64,64")
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--mode", choices=["aio", "sync"], default="aio")
    parser.add_argument("--threads", type=int, default=4, help="sync mode's pool")
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.sample_shape.split(","))
    floor = Floor(args.model_path, args.model_name, shape)
    if args.mode == "aio":
        asyncio.run(_serve_aio(floor, args.grpc_port, args.http_port))
        return
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.threads))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(SyncServicer(floor), server)
    server.add_insecure_port(f"127.0.0.1:{args.grpc_port}")
    server.start()
    _ready_http(args.http_port)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
