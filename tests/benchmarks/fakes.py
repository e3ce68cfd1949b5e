"""Tiny real servers on free ports that answer like a V2 server, for the harness tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
from tritonclient.grpc import service_pb2

OUTPUT = np.arange(10, dtype=np.float32)


@contextmanager
def v2_http_server(status: int = 200, output: np.ndarray = OUTPUT) -> Iterator[str]:
    """A keep-alive HTTP server answering every POST with a V2 JSON ``output``; yields its URL."""
    answer = json.dumps(
        {
            "outputs": [
                {"name": "output", "datatype": "FP32", "shape": [1, 10], "data": output.tolist()}
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def v2_grpc_server(fail: bool = False) -> Iterator[str]:
    """A gRPC ``ModelInfer`` answering ``OUTPUT`` as raw contents (or UNAVAILABLE)."""
    response = service_pb2.ModelInferResponse(model_name="mlp", model_version="1")
    response.outputs.add(name="output", datatype="FP32", shape=[1, 10])
    response.raw_output_contents.append(OUTPUT.tobytes())
    answer = response.SerializeToString()

    def infer(request: bytes, context: grpc.ServicerContext) -> bytes:
        service_pb2.ModelInferRequest.FromString(request)  # a malformed body fails the test
        if fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "queue full")
        return answer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait(5)
